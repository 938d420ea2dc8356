"""Elastic scaling end to end: PodMetrics -> decision -> ZooKeeper layout and pods on kwok nodes.

Pod usage comes from the PodMetrics CRD STAND-IN (rig/podmetrics_standin.py), which serves
metrics.k8s.io/v1beta1 from the rig's real apiserver: it is not metrics-server, and the tests
write the usage objects themselves. Node capacity is that of the rig's kwok nodes (16 CPU /
32Gi each), with the requests of every pod the real scheduler bound to them.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s
from structlog.testing import capture_logs

from reconciler.adapters.sql.inventory import create_tables, insert_ids
from reconciler.domain.podspec import KIND_LABEL, MANAGED_BY_LABEL, MANAGED_BY_VALUE
from reconciler.reconcile.autoscale import Autoscaler
from reconciler.rules.capacity import fit_on_nodes
from reconciler.telemetry import metrics
from rig import podmetrics_standin
from tests.support.fleet import (
    REPO,
    Fleet,
    eventually,
    fleet,
    read_layout,
    uuids,
    write_policy,
)

pytestmark = pytest.mark.integration

MI = 2**20
# iota-dac requests 250m / 256Mi; targets of 50% make "2x target" = 250m / 256Mi used.
AUTOSCALE = {
    "cpuTargetPercent": 50,
    "memoryTargetPercent": 50,
    "periodSeconds": 1,
    "scaleDownWindowSeconds": 3,
}


def figure(name: str, value: object) -> None:
    print(f"\nFIGURE {name}: {value}")  # quoted in the report; shown with -s


@pytest.fixture
def world(
    zk_hosts: str, pg_url: str, kube: Any, kube_namespace: str, tmp_path: Path
) -> Iterator[tuple[Fleet, str, Any, str, Path]]:
    api = kube.api_client()
    podmetrics_standin.install(api)  # idempotent; another test may have uninstalled it
    create_tables(pg_url)
    policy = write_policy(
        tmp_path / "policy.yaml",
        kube_namespace,
        Thing={"initInstances": 5, "maxInstances": 20, "autoscale": AUTOSCALE},
    )
    with fleet(zk_hosts, pg_url, api, policy) as f:
        f.ports.autoscaler = Autoscaler(f.pods)
        yield f, pg_url, api, kube_namespace, tmp_path
    api.close()


def put_usage(
    api: Any,
    ns: str,
    kind: str,
    instance_name: str,
    ids: range | list[int],
    cpu: str,
    mem: str,
    *,
    age: float = 0.0,
) -> None:
    """PodMetrics (stand-in) for the given instances' pods, labelled as metrics-server would."""
    for i in ids:
        labels = {MANAGED_BY_LABEL: MANAGED_BY_VALUE, KIND_LABEL: kind, "instanceId": str(i)}
        podmetrics_standin.put_pod_metrics(
            api,
            ns,
            f"{instance_name}-{i}",
            {instance_name: (cpu, mem)},
            labels=labels,
            timestamp=time.time() - age,
        )


def running(api: Any, ns: str, n: int) -> bool:
    pods = k8s.CoreV1Api(api).list_namespaced_pod(ns).items
    live = [p for p in pods if p.metadata.deletion_timestamp is None]
    return len(live) == n and all(p.status.phase == "Running" for p in live)


def autoscale_status(f: Fleet, kind: str = "Thing") -> dict[str, Any]:
    d = f.daemon()
    f.loaded()  # the fleet's state (shared with the daemon) holds the policy
    return d.status()["kinds"][kind]["autoscale"]


def next_period(f: Fleet, kind: str = "Thing", seconds: float = 1.0) -> None:
    """Sleep until the kind's next decision is due (periodSeconds after the last one)."""
    last = f.ports.autoscaler.decisions.get(kind) if f.ports.autoscaler else None
    if last is not None:
        time.sleep(max(0.0, last.at + seconds - time.monotonic()) + 0.02)  # `at`: monotonic


def owners(layout: dict[int, dict[str, Any]]) -> dict[str, int]:
    return {rid: i for i, inst in layout.items() for rid in inst["ids"]}


def start_five(f: Fleet, db: str, api: Any, ns: str, rows: int = 1000) -> None:
    """1000 Things on 5 instances (initInstances), 3 Rules; every pod Running."""
    insert_ids(db, "Thing", uuids(rows))
    insert_ids(db, "Rule", uuids(10))
    first = f.tick()
    assert first.plan.reports["Thing"].instances == 5
    # No pods, so no PodMetrics yet: no action beyond what the rows need.
    assert f.ports.autoscaler is not None
    first_decision = f.ports.autoscaler.decisions["Thing"]
    assert (first_decision.current, first_decision.final) == (0, 5)
    assert first_decision.limits == ("no-metrics", "row-minimum")
    eventually(lambda: running(api, ns, 5 + 3))


def scale_up_to_ten(f: Fleet, api: Any, ns: str, kazoo: Any, cpu: str, mem: str) -> int:
    before = read_layout(kazoo, "Thing")
    put_usage(api, ns, "Thing", "iota-dac", range(5), cpu, mem)
    next_period(f)
    result = f.tick()
    after = read_layout(kazoo, "Thing")
    assert sorted(after) == list(range(10))
    d = f.ports.autoscaler.decisions["Thing"]  # type: ignore[union-attr]
    assert (d.current, d.desired, d.final, d.factor) == (5, 10, 10, None)
    was = owners(before)
    moved = sum(1 for rid, i in owners(after).items() if was[rid] != i)
    assert moved == result.plan.reports["Thing"].moved
    # Minimal movement: the 5 new instances take their share (1000/10 each) and no more.
    assert moved == sum(len(after[i]["ids"]) for i in range(5, 10))
    assert {len(inst["ids"]) for inst in after.values()} == {100}
    # Each instance's count follows the new size.
    assert {inst["node"]["count"] for inst in after.values()} == {101}
    eventually(lambda: running(api, ns, 10 + 3))
    return moved


def test_cpu_at_twice_the_target_doubles_five_instances_to_ten(
    world: tuple[Fleet, str, Any, str, Path], kazoo_client: Any
) -> None:
    f, db, api, ns, _ = world
    start_five(f, db, api, ns)
    with capture_logs() as logs:
        moved = scale_up_to_ten(f, api, ns, kazoo_client, cpu="250m", mem="128Mi")
    decisions = [e for e in logs if e["event"] == "autoscale decision"]
    assert len(decisions) == 1
    e = decisions[0]
    assert (e["resource"], e["current"], e["desired"], e["final"]) == ("Thing", 5, 10, 10)
    assert (e["cpu_percent"], e["cpu_target_percent"], e["memory_percent"]) == (100.0, 50, 50.0)
    status = autoscale_status(f)
    assert (status["current"], status["final"], status["limitedBy"]) == (5, 10, None)
    assert status["metrics"]["cpu"]["utilisationPercent"] == 100.0
    assert "cpu 100/50%, memory 50/50%: 5 -> 10" in status["text"]
    figure("cpu 2x: ids moved 5->10 of 1000", moved)


def test_memory_only_pressure_doubles_five_instances_to_ten(
    world: tuple[Fleet, str, Any, str, Path], kazoo_client: Any
) -> None:
    f, db, api, ns, _ = world
    start_five(f, db, api, ns)
    scale_up_to_ten(f, api, ns, kazoo_client, cpu="125m", mem="256Mi")
    metrics = autoscale_status(f)["metrics"]
    assert (metrics["cpu"]["desired"], metrics["memory"]["desired"]) == (5, 10)


def test_both_inside_the_tolerance_change_nothing(
    world: tuple[Fleet, str, Any, str, Path], kazoo_client: Any
) -> None:
    f, db, api, ns, _ = world
    start_five(f, db, api, ns)
    # 52% CPU and ~47% memory of a 50% target: inside the 10% band.
    put_usage(api, ns, "Thing", "iota-dac", range(5), "130m", "120Mi")
    next_period(f)
    before = f.writes()
    result = f.tick()
    assert result.plan.ops == ()
    assert f.writes() == before
    assert sorted(read_layout(kazoo_client, "Thing")) == list(range(5))
    status = autoscale_status(f)
    assert (status["final"], status["limitedBy"]) == (5, "tolerance")


def test_load_drop_waits_for_the_window_then_goes_down_to_the_row_minimum(
    world: tuple[Fleet, str, Any, str, Path], kazoo_client: Any
) -> None:
    f, db, api, ns, _ = world
    start_five(f, db, api, ns)
    scale_up_to_ten(f, api, ns, kazoo_client, cpu="250m", mem="128Mi")
    before = read_layout(kazoo_client, "Thing")
    scaler = f.ports.autoscaler
    assert scaler is not None

    # 10% CPU and 9.4% memory everywhere: the recommendation is ceil(10 x 0.2) = 2.
    put_usage(api, ns, "Thing", "iota-dac", range(10), "25m", "24Mi")
    first_low: float | None = None
    seen: list[tuple[float, int, str | None]] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        f.tick()
        d = scaler.decisions["Thing"]
        if d.desired < 10 and first_low is None:
            first_low = d.at
        instances = len(read_layout(kazoo_client, "Thing"))
        if first_low is not None:
            seen.append((d.at - first_low, instances, d.factor))
        if instances < 10:
            break
        time.sleep(0.2)  # a pass and a sample every 0.2 s: the stabilization is what is timed
    assert first_low is not None
    held = [s for s in seen if s[1] == 10]
    assert held and all(age < 3.0 for age, _, _ in held), seen
    assert all(factor == "stabilization" for _, _, factor in held), seen
    age, instances, factor = seen[-1]
    assert instances == 5, seen  # not 2: the 1000 rows need initInstances = 5
    assert age >= 3.0 and factor == "row-minimum", seen

    after = read_layout(kazoo_client, "Thing")
    assert sorted(after) == list(range(5))
    was = owners(before)
    moved = sum(1 for rid, i in owners(after).items() if was[rid] != i)
    # Only the ids of the 5 removed instances moved, onto the 5 that stay.
    assert moved == sum(len(before[i]["ids"]) for i in range(5, 10)) == 500
    assert {len(inst["ids"]) for inst in after.values()} == {200}
    eventually(lambda: running(api, ns, 5 + 3))
    status = autoscale_status(f)
    assert (status["desired"], status["final"], status["limitedBy"]) == (2, 5, "row-minimum")
    figure("scale-down after load drop (window 3 s): seconds after first low", round(age, 2))
    figure("scale-down 10->5: ids moved of 1000", moved)


def big_template(tmp_path: Path, cpu: str, mem: str) -> Path:
    """The rules-engine template with large requests, so the 16-CPU kwok nodes fill fast."""
    src = REPO / "templates/iota-rules-engine/pod-template.yml"
    manifest = yaml.safe_load(src.read_text())
    manifest["spec"]["containers"][0]["resources"] = {
        "requests": {"cpu": cpu, "memory": mem},
        "limits": {"cpu": cpu, "memory": mem},
    }
    out = tmp_path / "big-template.yml"
    out.write_text(yaml.safe_dump(manifest))
    return out


def test_scale_up_is_capped_at_what_fits_on_the_nodes(
    world: tuple[Fleet, str, Any, str, Path], kazoo_client: Any
) -> None:
    f, db, api, ns, tmp_path = world
    write_policy(
        f.policy_path,
        ns,
        Thing={"initInstances": 3, "maxInstances": 20},
        Rule={
            "initInstances": 3,
            "maxInstances": 30,
            "template": str(big_template(tmp_path, "5", "1Gi")),
            "autoscale": {"cpuTargetPercent": 50, "periodSeconds": 1},
        },
    )
    insert_ids(db, "Thing", uuids(100))
    insert_ids(db, "Rule", uuids(100))
    f.tick()
    eventually(lambda: running(api, ns, 3 + 3))
    # 10 CPUs used of 5 requested: 200% of a 50% target -> 4 x 3 = 12 instances wanted.
    put_usage(api, ns, "Rule", "iota-rules-engine", range(3), "10", "512Mi")
    nodes = f.pods.node_capacity()
    fit = fit_on_nodes(nodes, 5000, 2**30)
    assert fit < 9, f"the nodes have room for {fit} more 5-CPU pods: the test needs full nodes"
    next_period(f, "Rule")
    f.tick()
    d = f.ports.autoscaler.decisions["Rule"]  # type: ignore[union-attr]
    assert (d.current, d.desired) == (3, 12)
    assert (d.final, d.factor, d.fit, d.shortfall) == (3 + fit, "capacity", fit, 9 - fit)
    assert len(read_layout(kazoo_client, "Rule")) == 3 + fit
    status = autoscale_status(f, "Rule")
    assert (status["limitedBy"], status["shortfall"]) == ("capacity", 9 - fit)
    assert f"{9 - fit} short of room on the nodes" in status["text"]
    # The real scheduler agrees: every pod the decision added is bound and Running, and the
    # nodes now hold no further pod of that size.
    eventually(lambda: running(api, ns, 3 + 3 + fit))
    assert fit_on_nodes(f.pods.node_capacity(), 5000, 2**30) == 0
    figure("nodes full: 5-CPU pods that fit / wanted", f"{fit} / 9 (shortfall {9 - fit})")


def test_missing_stale_or_absent_metrics_never_scale_and_say_why(
    world: tuple[Fleet, str, Any, str, Path], kazoo_client: Any
) -> None:
    f, db, api, ns, _ = world
    start_five(f, db, api, ns)
    scale_up_to_ten(f, api, ns, kazoo_client, cpu="250m", mem="128Mi")

    # Pods 5..9 have no PodMetrics and 0..4 have stale ones: nothing fresh at all.
    put_usage(api, ns, "Thing", "iota-dac", range(5), "10m", "10Mi", age=600)
    deadline = time.time() + 4.5  # past the 3 s down window: still no scale-down
    with capture_logs() as logs:
        while time.time() < deadline:
            next_period(f)
            f.tick()
            assert len(read_layout(kazoo_client, "Thing")) == 10
    # Held the same way every period: said once, not once a period.
    assert [e["limited_by"] for e in logs if e["event"] == "autoscale decision"] == ["no-metrics"]
    status = autoscale_status(f)
    assert (status["final"], status["limitedBy"]) == (10, "no-metrics")
    assert "stale" in status["text"], status["text"]
    assert status["metrics"]["cpu"]["utilisationPercent"] is None

    # The metrics API itself absent (the stand-in CRD removed): no crash, count kept.
    podmetrics_standin.uninstall(api)
    try:
        next_period(f)
        result = f.tick()
        assert result.plan.ops == ()
        assert len(read_layout(kazoo_client, "Thing")) == 10
        status = autoscale_status(f)
        assert (status["final"], status["limitedBy"]) == (10, "no-metrics")
        assert "pod metrics unavailable" in status["text"], status["text"]
        figure("metrics absent: status text", status["text"])
    finally:
        podmetrics_standin.install(api)


def test_pod_usage_is_exported_for_kinds_that_do_not_autoscale(
    world: tuple[Fleet, str, Any, str, Path],
) -> None:
    f, db, api, ns, _ = world
    insert_ids(db, "Rule", uuids(20))  # Rule has no autoscale block
    f.tick()
    eventually(lambda: running(api, ns, 8), timeout=60)  # 5 Thing + 3 Rule pods
    put_usage(api, ns, "Rule", "iota-rules-engine", range(3), "250m", "64Mi")
    f.ports.autoscaler._usage_read.clear()  # type: ignore[union-attr]  (the once-a-minute read)
    f.tick()
    cpu = metrics.REGISTRY.get_sample_value(
        "reconciler_pod_cpu_usage_cores", {"resource": "Rule", "instance_id": "1"}
    )
    mem = metrics.REGISTRY.get_sample_value(
        "reconciler_pod_memory_usage_bytes", {"resource": "Rule", "instance_id": "1"}
    )
    assert cpu == pytest.approx(0.25) and mem == 64 * 2**20
