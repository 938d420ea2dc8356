"""Capacity includes the namespace's ResourceQuota, end to end: the rig's real apiserver (its
ResourceQuota admission plugin refuses pods), ZooKeeper layout and pods on kwok nodes.

The rig runs no kube-controller-manager, so no quota controller: the tests write each quota's
status (`hard` and `used`) as the controller would; the admission plugin then counts every
pod it admits into `used` itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s

from reconciler.adapters.kube.events import EventRecorder
from reconciler.adapters.sql.inventory import create_tables, insert_ids
from reconciler.reconcile.admission import Admission
from reconciler.rules.capacity import QUOTA_ERROR
from reconciler.telemetry import metrics
from tests.support.fleet import Fleet, eventually, fleet, read_layout, uuids, write_policy

pytestmark = pytest.mark.integration

PER = 500  # Rule's resourcePerInstance (tests/support/fleet.py write_policy)


@pytest.fixture
def world(
    zk_hosts: str, pg_url: str, kube: Any, kube_namespace: str, tmp_path: Path
) -> Iterator[tuple[Fleet, str, Any, str]]:
    """A fleet with the quota read wired as in production, and Events recorded."""
    api = kube.api_client()
    create_tables(pg_url)
    policy = write_policy(tmp_path / "policy.yaml", kube_namespace, Thing={"initInstances": 1})
    recorder = EventRecorder(api, "test-quota")
    with fleet(zk_hosts, pg_url, api, policy) as f:
        f.ports.admission = Admission(f.pods)
        f.ports.events = recorder
        yield f, pg_url, api, kube_namespace
    recorder.close()
    api.close()


def live_pods(api: Any, ns: str) -> dict[str, Any]:
    pods = k8s.CoreV1Api(api).list_namespaced_pod(ns).items
    return {p.metadata.name: p for p in pods if p.metadata.deletion_timestamp is None}


def all_running(api: Any, ns: str, n: int) -> bool:
    pods = live_pods(api, ns)
    return len(pods) == n and all(p.status.phase == "Running" for p in pods.values())


def put_quota(api: Any, ns: str, name: str, pods: int, *, scopes: list[str] | None = None) -> None:
    """A quota of `pods` pods, its status written as the quota controller would: full."""
    core = k8s.CoreV1Api(api)
    spec: dict[str, Any] = {"hard": {"pods": str(pods)}}
    if scopes:
        spec["scopes"] = scopes
    core.create_namespaced_resource_quota(ns, {"metadata": {"name": name}, "spec": spec})
    status = {"status": {"hard": {"pods": str(pods)}, "used": {"pods": str(pods)}}}
    core.patch_namespaced_resource_quota_status(name, ns, status)


def podless_ids(kazoo: Any, api: Any, ns: str) -> dict[int, int]:
    """Rule instances holding ids without a live pod: instance -> ids held."""
    pods = live_pods(api, ns)
    layout = read_layout(kazoo, "Rule")
    return {
        i: len(inst["ids"])
        for i, inst in layout.items()
        if inst["ids"] and f"iota-rules-engine-{i}" not in pods
    }


def rule_pods(api: Any, ns: str) -> set[int]:
    return {
        int(name.rsplit("-", 1)[1])
        for name in live_pods(api, ns)
        if name.startswith("iota-rules-engine-")
    }


def quota_events(api: Any, ns: str) -> list[Any]:
    events = k8s.EventsV1Api(api).list_namespaced_event(ns).items
    return [e for e in events if e.reason == "QuotaExceeded"]


def start(f: Fleet, db: str, api: Any, ns: str) -> None:
    """450 Rules on 3 instances (count 151), 10 Things on 1; every pod Running."""
    insert_ids(db, "Rule", uuids(450))
    insert_ids(db, "Thing", uuids(10))
    f.tick()
    eventually(lambda: all_running(api, ns, 3 + 1))


def test_a_full_quota_adds_no_instance_existing_ones_fill_the_rest_is_reported(
    world: tuple[Fleet, str, Any, str], kazoo_client: Any
) -> None:
    f, db, api, ns = world
    start(f, db, api, ns)
    put_quota(api, ns, "pods", 4)  # at the current pod count
    insert_ids(db, "Rule", uuids(1350))  # 1800 rows: 4 instances of 500 wanted
    first = f.tick()
    second = f.tick()
    assert podless_ids(kazoo_client, api, ns) == {}
    layout = read_layout(kazoo_client, "Rule")
    assert sorted(layout) == [0, 1, 2]
    # The existing instances took what they could: resourcePerInstance each.
    assert {len(inst["ids"]) for inst in layout.values()} == {PER}
    assert {inst["node"]["count"] for inst in layout.values()} == {PER}
    report = second.plan.reports["Rule"]
    assert (report.instances, report.unassigned) == (3, 1800 - 3 * PER)
    assert report.error is not None and report.error.startswith(QUOTA_ERROR)
    assert first.plan.reports["Rule"].unassigned == 300
    assert not second.plan.ops  # the capped plan is stable
    unassigned = metrics.REGISTRY.get_sample_value(
        "reconciler_unassigned_ids", {"resource": "Rule"}
    )
    assert unassigned == 300
    status = f.daemon().status()["kinds"]["Rule"]
    assert status["unassigned"] == 300 and "ResourceQuota" in status["error"]
    assert rule_pods(api, ns) == {0, 1, 2}
    event = eventually(lambda: quota_events(api, ns))[0]
    assert event.type == "Warning" and event.regarding.name == "iota-rules-engine-3"
    assert "300 ids unassigned" in event.note

    # Room returns: the quota goes. The next pass opens the instance with its pod.
    k8s.CoreV1Api(api).delete_namespaced_resource_quota("pods", ns)
    third = f.tick()
    layout = read_layout(kazoo_client, "Rule")
    assert sorted(layout) == [0, 1, 2, 3]
    assert third.plan.reports["Rule"].unassigned == 0
    assert rule_pods(api, ns) == {0, 1, 2, 3}
    assert podless_ids(kazoo_client, api, ns) == {}
    eventually(lambda: all_running(api, ns, 4 + 1))


def test_a_create_refused_anyway_gives_its_ids_back_by_the_next_pass(
    world: tuple[Fleet, str, Any, str], kazoo_client: Any
) -> None:
    """A quota the read does not evaluate (scoped: it applies to pods with requests, which
    the apiserver knows and the daemon does not judge) refuses the creates: the next pass
    takes the podless instances away and their ids go back."""
    f, db, api, ns = world
    start(f, db, api, ns)
    put_quota(api, ns, "scoped", 4, scopes=["NotBestEffort"])
    insert_ids(db, "Rule", uuids(1350))
    grown = f.run()  # held layout of count 151: grows to 12 instances, creates refused
    refused = [o.error for o in grown.failed]
    assert refused and all("exceeded quota" in (e or "") for e in refused)
    assert len(read_layout(kazoo_client, "Rule")) > 3
    assert podless_ids(kazoo_client, api, ns)  # today's stranding, for one pass only
    back = f.run()
    assert not back.failed
    assert podless_ids(kazoo_client, api, ns) == {}
    layout = read_layout(kazoo_client, "Rule")
    assert sorted(layout) == [0, 1, 2]
    assert {len(inst["ids"]) for inst in layout.values()} == {PER}
    assert back.plan.reports["Rule"].unassigned == 300

    # The quota is raised: its object changes, the block lifts, instance and pod come back.
    k8s.CoreV1Api(api).delete_namespaced_resource_quota("scoped", ns)

    def together() -> bool:
        f.run()
        layout = read_layout(kazoo_client, "Rule")
        return sorted(layout) == [0, 1, 2, 3] and rule_pods(api, ns) == {0, 1, 2, 3}

    eventually(together, timeout=10, interval=0.5)
    assert podless_ids(kazoo_client, api, ns) == {}
