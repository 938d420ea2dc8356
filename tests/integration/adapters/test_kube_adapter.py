"""The kube adapter against the rig's real kube-apiserver + kube-scheduler + kwok.

Pods are scheduled by the real scheduler onto kwok's fake nodes, and kwok plays the
kubelet (Pending -> Running, deletion). To fail a pod deterministically it is annotated
`kwok.x-k8s.io/status: custom` (kwok then leaves it alone) and its status subresource is
patched to Failed, as RIG.md describes. PodMetrics come from a CRD stand-in
(rig/podmetrics_standin.py), never from a real metrics-server.
"""

from __future__ import annotations

import json
import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from reconciler.adapters.kube.client import MetricsUnavailable, PodStillTerminating, make_api_client
from reconciler.adapters.kube.pods import KubePods
from reconciler.adapters.kube.watch import PodWatcher
from reconciler.domain.errors import NotYet, SourceUnavailable
from reconciler.domain.model import Pod
from reconciler.domain.podspec import PodTemplate, pod_requests, render_pod
from reconciler.policy.templates import load_pod_template
from rig import podmetrics_standin
from tests.support.polling import eventually

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
KWOK_CUSTOM = {"kwok.x-k8s.io/status": "custom"}  # kwok leaves such a pod alone
HOLD = "reconciler.iota/test-hold"  # a finalizer: keeps a deleted pod terminating


def wait_for(pred: Callable[[], Any], timeout: float = 20.0, what: str = "condition") -> Any:
    """tests.support.polling.eventually, polling a little faster (pod phases change within
    ms here)."""
    return eventually(pred, timeout=timeout, interval=0.05, what=what)


def figure(name: str, value: str) -> None:
    # Figures the report quotes; shown with -s or in the -ra summary of a failure.
    print(f"\nFIGURE {name}: {value}")


@pytest.fixture
def templates(kube_namespace: str) -> dict[str, PodTemplate]:
    return {
        "Thing": load_pod_template(
            "Thing", kube_namespace, "iota-dac", ROOT / "templates/iota-dac/pod-template.yml"
        ),
        "Rule": load_pod_template(
            "Rule",
            kube_namespace,
            "iota-rules-engine",
            ROOT / "templates/iota-rules-engine/pod-template.yml",
        ),
    }


@pytest.fixture
def api(kube: Any) -> Iterator[client.ApiClient]:
    a = make_api_client(
        in_cluster=False, kubeconfig=None, url=kube.url, token=kube.token, ca_file=kube.ca_file
    )
    yield a
    a.close()


@pytest.fixture
def pods(api: client.ApiClient, templates: dict[str, PodTemplate]) -> KubePods:
    return KubePods(api, templates, request_timeout=5)


@pytest.fixture
def core(api: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(api)


def raw_pod(core: client.CoreV1Api, ns: str, name: str) -> dict[str, Any] | None:
    try:
        return json.loads(core.read_namespaced_pod(name, ns, _preload_content=False).data)
    except ApiException as e:
        if e.status == 404:
            return None
        raise


def running(pods: KubePods, kind: str, name: str) -> Pod | None:
    p = pods.get_pod(kind, name)
    return p if p is not None and p.phase == "Running" and not p.terminating else None


def create_when_free(pods: KubePods, kind: str, instance_id: int) -> Pod | None:
    """One pass's create of the pod: None while the old pod still holds the name."""
    try:
        return pods.create_pod(kind, instance_id)
    except PodStillTerminating:
        return None


def fail_pod(core: client.CoreV1Api, ns: str, name: str) -> None:
    """Make kwok let go of the pod, then set its phase to Failed as a kubelet would."""
    core.patch_namespaced_pod(name, ns, {"metadata": {"annotations": KWOK_CUSTOM}})
    core.patch_namespaced_pod_status(
        name, ns, {"status": {"phase": "Failed", "reason": "TestFailed"}}
    )


def hold_and_delete(core: client.CoreV1Api, ns: str, name: str) -> None:
    """Delete the pod but keep it terminating (a finalizer; kwok told to leave it alone)."""
    core.patch_namespaced_pod(
        name, ns, {"metadata": {"annotations": KWOK_CUSTOM, "finalizers": [HOLD]}}
    )
    core.delete_namespaced_pod(name, ns, grace_period_seconds=0)


def release(core: client.CoreV1Api, ns: str, name: str) -> None:
    try:
        core.patch_namespaced_pod(name, ns, {"metadata": {"finalizers": None}})
    except ApiException as e:
        if e.status != 404:
            raise


# --------------------------------------------------------------------------- pods


def test_create_renders_spec_fields(
    pods: KubePods, core: client.CoreV1Api, kube_namespace: str
) -> None:
    t0 = time.monotonic()
    created = pods.create_pod("Thing", 3)
    assert created.name == "iota-dac-3" and created.instance_id == 3
    d = raw_pod(core, kube_namespace, "iota-dac-3")
    assert d is not None
    assert d["metadata"]["namespace"] == kube_namespace
    assert d["metadata"]["labels"] == {
        "app": "iota-dac",
        "instanceId": "3",
        "app.kubernetes.io/managed-by": "reconciler",
        "reconciler.iota/kind": "Thing",
    }
    assert d["spec"]["containers"][0]["env"][0] == {"name": "INSTANCE_ID", "value": "3"}
    assert d["spec"]["containers"][0]["resources"]["requests"] == {"cpu": "250m", "memory": "256Mi"}
    p = wait_for(lambda: running(pods, "Thing", "iota-dac-3"), what="pod Running")
    figure("create -> Running (scheduler + kwok)", f"{time.monotonic() - t0:.2f}s")
    assert p.uid == created.uid and p.started_at is not None
    assert pods.writes == 1


def test_create_existing_live_pod_is_not_an_error(pods: KubePods) -> None:
    first = pods.create_pod("Rule", 0)
    again = pods.create_pod("Rule", 0)  # 409 AlreadyExists on a live pod
    assert again.uid == first.uid
    assert pods.writes == 2


def test_list_by_labels_ignores_unmanaged(
    pods: KubePods, core: client.CoreV1Api, templates: dict[str, PodTemplate], kube_namespace: str
) -> None:
    pods.create_pod("Thing", 0)
    pods.create_pod("Thing", 1)
    pods.create_pod("Rule", 0)
    # Same template, made by hand: no managed-by label -> not ours, never listed or touched.
    manual = render_pod(templates["Thing"], 7)
    del manual["metadata"]["labels"]["app.kubernetes.io/managed-by"]
    core.create_namespaced_pod(kube_namespace, manual)
    things = pods.list_pods("Thing")
    assert sorted(things) == ["iota-dac-0", "iota-dac-1"]
    assert {p.instance_id for p in things.values()} == {0, 1}
    assert sorted(pods.list_pods("Rule")) == ["iota-rules-engine-0"]


def test_delete_is_404_safe(pods: KubePods, core: client.CoreV1Api, kube_namespace: str) -> None:
    pods.delete_pod("Thing", "iota-dac-42")  # never existed: done, no exception
    pods.create_pod("Thing", 4)
    wait_for(lambda: running(pods, "Thing", "iota-dac-4"), what="pod Running")
    pods.delete_pod("Thing", "iota-dac-4", grace_seconds=0)
    wait_for(lambda: raw_pod(core, kube_namespace, "iota-dac-4") is None, what="pod gone")
    pods.delete_pod("Thing", "iota-dac-4")  # already gone: still fine
    assert pods.list_pods("Thing") == {}
    assert pods.writes == 4


def test_recreate_failed_pod(pods: KubePods, core: client.CoreV1Api, kube_namespace: str) -> None:
    old = pods.create_pod("Thing", 2)
    wait_for(lambda: running(pods, "Thing", "iota-dac-2"), what="pod Running")
    fail_pod(core, kube_namespace, "iota-dac-2")
    assert pods.list_pods("Thing")["iota-dac-2"].phase == "Failed"
    # What the daemon does, level-triggered: delete this incarnation (uid precondition),
    # then create the pod again on a later pass once its name is free (here: polled).
    t0 = time.monotonic()
    pods.delete_pod("Thing", "iota-dac-2", uid=old.uid)
    created = wait_for(lambda: create_when_free(pods, "Thing", 2), what="name free, created")
    took = time.monotonic() - t0
    assert created.uid != old.uid and created.phase in ("Pending", "Running")
    new = wait_for(lambda: running(pods, "Thing", "iota-dac-2"), what="new pod Running")
    figure("recreate of a Failed pod (delete, name free, create)", f"{took:.3f}s")
    assert new.uid != old.uid
    assert new.instance_id == 2
    d = raw_pod(core, kube_namespace, "iota-dac-2")
    assert d is not None and d["spec"]["containers"][0]["env"][0]["value"] == "2"


def test_create_while_old_pod_terminates(
    pods: KubePods, core: client.CoreV1Api, kube_namespace: str
) -> None:
    old = pods.create_pod("Thing", 5)
    wait_for(lambda: running(pods, "Thing", "iota-dac-5"), what="pod Running")
    hold_and_delete(core, kube_namespace, "iota-dac-5")
    try:
        assert pods.list_pods("Thing")["iota-dac-5"].terminating
        with pytest.raises(PodStillTerminating):
            pods.create_pod("Thing", 5)
        # The daemon's delete + create of that pod: the delete is accepted (already under
        # way), the create is refused at once as NotYet, and nothing waits for the name.
        t0 = time.monotonic()
        pods.delete_pod("Thing", "iota-dac-5", uid=old.uid)
        with pytest.raises(PodStillTerminating) as refused:
            pods.create_pod("Thing", 5)
        assert isinstance(refused.value, NotYet)
        assert time.monotonic() - t0 < 2.0  # answered, not waited for
        # A burst of creates with the terminating one among them: the others all go
        # through; the terminating one is reported, and does not stop the ramp.
        res = pods.create_pods("Thing", [5, 6, 7, 8, 9])
        assert sorted(i for i, _ in res.succeeded) == [1, 2, 3, 4]
        assert [(i, type(e)) for i, e in res.failed] == [(0, PodStillTerminating)]
        assert res.skipped == []
    finally:
        release(core, kube_namespace, "iota-dac-5")
    wait_for(lambda: raw_pod(core, kube_namespace, "iota-dac-5") is None, what="old pod gone")
    new = pods.create_pod("Thing", 5)
    assert new.uid != old.uid


def test_create_pods_slow_start_throughput(pods: KubePods) -> None:
    n = 60
    t0 = time.monotonic()
    res = pods.create_pods("Thing", list(range(n)), max_workers=8)
    took = time.monotonic() - t0
    assert len(res.succeeded) == n and not res.failed and not res.skipped
    figure(
        f"create throughput ({n} pods, slow start, 8 workers)",
        f"{took:.2f}s = {n / took:.0f} pods/s",
    )
    assert len(pods.list_pods("Thing")) == n
    assert pods.writes == n
    # Converged: listing again makes no writes.
    pods.list_pods("Thing")
    assert pods.writes == n


def test_slow_start_against_failing_api_makes_one_call(api: client.ApiClient) -> None:
    # A namespace that does not exist: every create would be refused (404). Slow start
    # sends one, not 500.
    missing = f"missing-{uuid.uuid4().hex[:8]}"
    t = load_pod_template(
        "Thing", missing, "iota-dac", ROOT / "templates/iota-dac/pod-template.yml"
    )
    pods = KubePods(api, {"Thing": t}, request_timeout=5)
    res = pods.create_pods("Thing", list(range(500)))
    assert pods.writes == 1
    assert len(res.failed) == 1 and len(res.skipped) == 499 and not res.succeeded


def test_apiserver_down_is_source_unavailable_then_recovers(kube: Any, pods: KubePods) -> None:
    pods.create_pod("Thing", 0)
    kube.stop()
    try:
        for op in (
            lambda: pods.list_pods("Thing"),
            lambda: pods.create_pod("Thing", 1),
            lambda: pods.delete_pod("Thing", "iota-dac-0"),
        ):
            t0 = time.monotonic()
            with pytest.raises(SourceUnavailable):
                op()
            took = time.monotonic() - t0
            assert took < 3.0, took
        figure("apiserver down -> SourceUnavailable", f"{took:.3f}s")
    finally:
        kube.start()
    assert sorted(wait_for(lambda: _try_list(pods), what="list after restart")) == ["iota-dac-0"]


def _try_list(pods: KubePods) -> dict[str, Pod] | None:
    try:
        return pods.list_pods("Thing")
    except SourceUnavailable:
        return None


# --------------------------------------------------------------------------- watch


class Events:
    def __init__(self) -> None:
        self.q: queue.Queue[tuple[float, str, Pod | None, str]] = queue.Queue()

    def __call__(self, kind: str, pod: Pod | None, event: str) -> None:
        self.q.put((time.monotonic(), kind, pod, event))

    def wait(self, pred: Callable[[str, Pod | None, str], bool], timeout: float = 10.0) -> float:
        """Monotonic time at which a matching event arrived."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("no matching watch event")
            try:
                at, kind, pod, event = self.q.get(timeout=left)
            except queue.Empty:
                raise AssertionError("no matching watch event") from None
            if pred(kind, pod, event):
                return at


@pytest.fixture
def watcher(
    api: client.ApiClient, templates: dict[str, PodTemplate]
) -> Iterator[tuple[PodWatcher, Events]]:
    events = Events()
    w = PodWatcher(api, templates, events, server_timeout=30, backoff_max=1.0)
    w.start()
    wait_for(lambda: w.healthy, what="watch established")
    yield w, events
    t0 = time.monotonic()
    w.stop()
    assert time.monotonic() - t0 < 2.0, "stop() must join promptly"
    assert not w.healthy


def test_watch_sees_failed_within_2s_and_delete(
    watcher: tuple[PodWatcher, Events], pods: KubePods, core: client.CoreV1Api, kube_namespace: str
) -> None:
    w, events = watcher
    pods.create_pod("Thing", 1)
    events.wait(lambda k, p, e: k == "Thing" and p is not None and p.phase == "Running")
    t0 = time.monotonic()
    fail_pod(core, kube_namespace, "iota-dac-1")
    at = events.wait(
        lambda k, p, e: p is not None and p.name == "iota-dac-1" and p.phase == "Failed",
        timeout=2.0,
    )
    figure("Failed patch -> watch on_change", f"{(at - t0) * 1000:.0f}ms")
    assert at - t0 < 2.0
    snap = w.pods("Thing")
    assert snap is not None and snap["iota-dac-1"].phase == "Failed"
    core.delete_namespaced_pod("iota-dac-1", kube_namespace)
    events.wait(lambda k, p, e: k == "Thing" and e == "DELETED" and p is None)
    assert w.pods("Thing") == {}


def test_watch_survives_apiserver_restart(
    kube: Any, watcher: tuple[PodWatcher, Events], pods: KubePods
) -> None:
    w, events = watcher
    kube.stop()
    try:
        wait_for(lambda: not w.healthy, timeout=10, what="watch noticed the outage")
    finally:
        kube.start()
    t0 = time.monotonic()
    wait_for(lambda: w.healthy, timeout=30, what="watch re-established")
    figure("watch re-established after apiserver start", f"{time.monotonic() - t0:.2f}s")
    pods.create_pod("Rule", 4)
    events.wait(
        lambda k, p, e: k == "Rule" and p is not None and p.name == "iota-rules-engine-4", timeout=5
    )


def test_watch_relist_reports_pods_deleted_while_away(
    api: client.ApiClient,
    templates: dict[str, PodTemplate],
    pods: KubePods,
    core: client.CoreV1Api,
    kube_namespace: str,
) -> None:
    pods.create_pod("Thing", 0)
    events = Events()
    w = PodWatcher(api, templates, events, server_timeout=30)
    w.start()
    try:
        events.wait(lambda k, p, e: e == "ADDED" and p is not None and p.name == "iota-dac-0")
        wait_for(lambda: w.lists == 2, what="one initial list per kind")
        w.stop()
        # Deleted while nobody watched: the next list must report it, not forget it.
        core.delete_namespaced_pod("iota-dac-0", kube_namespace, grace_period_seconds=0)
        wait_for(lambda: raw_pod(core, kube_namespace, "iota-dac-0") is None, what="pod gone")
        w.start()
        events.wait(lambda k, p, e: k == "Thing" and e == "DELETED" and p is None)
        assert w.pods("Thing") == {}
    finally:
        w.stop()


# --------------------------------------------------------------------------- usage, nodes


@pytest.fixture
def standin(api: client.ApiClient) -> Iterator[None]:
    podmetrics_standin.install(api)
    yield


def test_pod_usage_via_podmetrics_standin(
    standin: None, api: client.ApiClient, pods: KubePods, kube_namespace: str
) -> None:
    ours = {
        "app.kubernetes.io/managed-by": "reconciler",
        "reconciler.iota/kind": "Thing",
        "instanceId": "0",
    }
    now = time.time()
    podmetrics_standin.put_pod_metrics(
        api,
        kube_namespace,
        "iota-dac-0",
        {"iota-dac": ("125000000n", "200Mi"), "sidecar": ("25m", "56Mi")},
        labels=ours,
        timestamp=now,
        window="15.5s",
    )
    podmetrics_standin.put_pod_metrics(
        api,
        kube_namespace,
        "iota-dac-1",
        {"iota-dac": ("1", "1Gi")},
        labels={**ours, "instanceId": "1"},
        timestamp=now,
    )
    # Another kind's pod and an unmanaged pod: not Thing usage.
    podmetrics_standin.put_pod_metrics(
        api,
        kube_namespace,
        "iota-rules-engine-0",
        {"r": ("5m", "1Mi")},
        labels={**ours, "reconciler.iota/kind": "Rule"},
    )
    podmetrics_standin.put_pod_metrics(api, kube_namespace, "manual", {"m": ("5m", "1Mi")})
    usage = pods.pod_usage("Thing")
    assert sorted(usage) == ["iota-dac-0", "iota-dac-1"]
    u0 = usage["iota-dac-0"]
    assert u0.cpu_millicores == pytest.approx(150.0)
    assert u0.memory_bytes == 256 * 2**20
    assert u0.window == 15.5
    assert abs(u0.timestamp - int(now)) < 1.0
    assert usage["iota-dac-1"].cpu_millicores == 1000.0
    assert sorted(pods.pod_usage("Rule")) == ["iota-rules-engine-0"]


def test_pod_usage_metrics_api_absent(api: client.ApiClient, pods: KubePods) -> None:
    podmetrics_standin.uninstall(api)
    try:
        with pytest.raises(MetricsUnavailable):
            pods.pod_usage("Thing")
        with pytest.raises(SourceUnavailable):  # the loop may catch either
            pods.pod_usage("Rule")
    finally:
        # The rig installs the stand-in for the whole session: later tests expect it.
        podmetrics_standin.install(api)


def _node_body(
    name: str,
    cpu: str,
    mem: str,
    taints: list[dict[str, str]] | None = None,
    unschedulable: bool = False,
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {"kwok.x-k8s.io/node": "fake"},
            "labels": {"type": "kwok", "reconciler.iota/test-node": "true"},
        },
        "spec": {"taints": taints or [], "unschedulable": unschedulable},
        "status": {
            "allocatable": {"cpu": cpu, "memory": mem, "pods": "110"},
            "capacity": {"cpu": cpu, "memory": mem, "pods": "110"},
        },
    }


def test_node_capacity_counts_bound_pods(
    kube: Any,
    pods: KubePods,
    core: client.CoreV1Api,
    templates: dict[str, PodTemplate],
    kube_namespace: str,
) -> None:
    suffix = uuid.uuid4().hex[:6]
    # A node of our own with a taint, so the scheduler puts no other test's pod there and
    # its requested sum is exactly what this test binds to it (by spec.nodeName).
    tainted = f"cap-tainted-{suffix}"
    cordoned = f"cap-cordoned-{suffix}"
    taint = [{"key": "reconciler.iota/test", "value": "x", "effect": "NoSchedule"}]
    core.create_node(_node_body(tainted, "4", "8Gi", taints=taint))
    core.create_node(_node_body(cordoned, "2", "4Gi", unschedulable=True))
    try:

        def bind(t: PodTemplate, iid: int, phase: str | None = None) -> None:
            body = render_pod(t, iid)
            body["spec"]["nodeName"] = tainted
            body["spec"]["tolerations"] = [{"key": "reconciler.iota/test", "operator": "Exists"}]
            if phase:  # kwok must never touch it, or its Running patch may race ours
                body["metadata"]["annotations"] = KWOK_CUSTOM
            core.create_namespaced_pod(kube_namespace, body)
            if phase:
                core.patch_namespaced_pod_status(
                    body["metadata"]["name"], kube_namespace, {"status": {"phase": phase}}
                )

        bind(templates["Thing"], 0)
        bind(templates["Thing"], 1)
        bind(templates["Rule"], 0)
        bind(templates["Rule"], 1, phase="Failed")  # terminated: holds no requests

        thing_cpu, thing_mem = pod_requests(templates["Thing"])
        rule_cpu, rule_mem = pod_requests(templates["Rule"])

        def ours() -> dict[str, Any] | None:
            caps = {n.name: n for n in pods.node_capacity()}
            t = caps.get(tainted)
            if t is None or t.requested_cpu_m != 2 * thing_cpu + rule_cpu:
                return None
            return caps

        try:
            caps = wait_for(ours, what="node capacity counting the bound pods")
        except AssertionError:
            raise AssertionError(
                f"{[n for n in pods.node_capacity() if n.name == tainted]}; "
                f"want cpu {2 * thing_cpu + rule_cpu}"
            ) from None
        t = caps[tainted]
        assert t.allocatable_cpu_m == 4000.0 and t.allocatable_mem_bytes == 8 * 2**30
        assert t.requested_mem_bytes == 2 * thing_mem + rule_mem
        assert t.schedulable is False  # NoSchedule taint: our template pods can't go there
        assert caps[cordoned].schedulable is False
        assert caps[cordoned].requested_cpu_m == 0
        # The rig's kwok nodes: Ready (kwok keeps them so), untainted, counted.
        for name in kube.node_names:
            assert caps[name].schedulable is True, caps[name]
            assert caps[name].allocatable_cpu_m > 0
    finally:
        for name in (tainted, cordoned):
            core.delete_node(name)


def test_make_api_client_from_kubeconfig(kube: Any, templates: dict[str, PodTemplate]) -> None:
    api = make_api_client(
        in_cluster=False, kubeconfig=str(kube.kubeconfig), url=None, token=None, ca_file=None
    )
    try:
        assert KubePods(api, templates).list_pods("Thing") == {}
    finally:
        api.close()


def test_watch_stop_is_prompt_while_idle(
    api: client.ApiClient, templates: dict[str, PodTemplate]
) -> None:
    w = PodWatcher(api, templates, lambda k, p, e: None, server_timeout=300)
    w.start()
    wait_for(lambda: w.healthy, what="watch established")
    t0 = time.monotonic()
    w.stop()
    assert time.monotonic() - t0 < 1.0
    assert not any(th.name.startswith("pod-watch-") for th in threading.enumerate())
