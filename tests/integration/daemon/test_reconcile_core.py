"""The reconcile core end to end: PostgreSQL rows -> ZooKeeper layout -> pods on kwok nodes."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s

from reconciler.adapters.sql.inventory import create_tables, delete_ids, insert_ids
from tests.support.fleet import Fleet, eventually, fleet, read_layout, uuids, write_policy


@pytest.fixture
def world(zk_hosts: str, pg_url: str, kube: Any, kube_namespace: str, tmp_path: Path):
    create_tables(pg_url)
    policy = write_policy(tmp_path / "policy.yaml", kube_namespace)
    api = kube.api_client()
    with fleet(zk_hosts, pg_url, api, policy) as f:
        yield f, pg_url, k8s.CoreV1Api(api), kube_namespace


def pod_names(core: k8s.CoreV1Api, ns: str) -> set[str]:
    return {
        p.metadata.name
        for p in core.list_namespaced_pod(ns).items
        if p.metadata.deletion_timestamp is None
    }


def check_layout(kazoo: Any, kind: str, rows: set[str]) -> dict[int, dict[str, Any]]:
    layout = read_layout(kazoo, kind)
    seen: list[str] = [rid for inst in layout.values() for rid in inst["ids"]]
    assert len(seen) == len(set(seen)), "an id is in two instances"
    assert set(seen) == rows
    for inst in layout.values():
        assert inst["children"] == ["_reload", "resources", "tmp"]
        assert inst["node"] == {"used": len(inst["ids"]), "count": inst["node"]["count"]}
        assert inst["node"]["used"] <= inst["node"]["count"]
        assert inst["tmp"] in (b"", None)
    return layout


def test_first_tick_builds_the_spec_layout_and_pods_and_the_second_writes_nothing(
    world: tuple[Fleet, str, k8s.CoreV1Api, str], kazoo_client: Any
) -> None:
    f, db, core, ns = world
    things, rules = uuids(12_345), uuids(777)
    insert_ids(db, "Thing", things)
    insert_ids(db, "Rule", rules)

    first = f.tick()

    things_layout = check_layout(kazoo_client, "Thing", set(things))
    rules_layout = check_layout(kazoo_client, "Rule", set(rules))
    assert sorted(things_layout) == list(range(10))
    assert {i["node"]["count"] for i in things_layout.values()} == {1235}
    assert sorted(rules_layout) == [0, 1, 2]
    assert {i["node"]["count"] for i in rules_layout.values()} == {260}
    expected = {f"iota-dac-{i}" for i in range(10)} | {f"iota-rules-engine-{i}" for i in range(3)}
    assert pod_names(core, ns) == expected
    pod = core.read_namespaced_pod("iota-dac-7", ns)
    assert pod.metadata.labels["instanceId"] == "7"
    assert pod.spec.containers[0].env[0].value == "7"
    assert first.plan.reports["Thing"].moved == 0

    before = f.writes()
    second = f.tick()
    assert second.plan.ops == ()
    assert f.writes() == before, "a converged tick must write nothing"


def test_new_rows_are_assigned_and_only_their_instances_written_and_reloaded(
    world: tuple[Fleet, str, k8s.CoreV1Api, str], kazoo_client: Any
) -> None:
    f, db, _, _ = world
    things = uuids(12_345)
    insert_ids(db, "Thing", things)
    insert_ids(db, "Rule", uuids(10))
    f.tick()
    before = read_layout(kazoo_client, "Thing")
    owner = {rid: i for i, inst in before.items() for rid in inst["ids"]}

    more = uuids(1000)
    insert_ids(db, "Thing", more)
    result = f.tick()

    after = check_layout(kazoo_client, "Thing", set(things) | set(more))
    written = {op.instance.instance_id for op in result.plan.ops if getattr(op, "instance", None)}
    for i, inst in after.items():
        if i not in before:  # no room left: the seed's rule added an instance for the rest
            assert i in written and inst["times"] == 0
            assert inst["node"]["count"] == before[0]["node"]["count"]
            continue
        changed = set(inst["ids"]) != set(before[i]["ids"])
        assert (i in written) == (changed or inst["node"]["count"] != before[i]["node"]["count"])
        assert inst["times"] == before[i]["times"] + (1 if changed else 0)
    moved = [rid for i, inst in after.items() for rid in inst["ids"] if owner.get(rid, i) != i]
    assert moved == []  # old ids all stayed where they were


def test_deleted_rows_leave_their_instances(
    world: tuple[Fleet, str, k8s.CoreV1Api, str], kazoo_client: Any
) -> None:
    f, db, _, _ = world
    things = uuids(3000)
    insert_ids(db, "Thing", things)
    f.tick()
    delete_ids(db, "Thing", things[:100])
    f.tick()
    check_layout(kazoo_client, "Thing", set(things[100:]))


def test_resource_per_instance_edits_while_running_move_few_ids(
    world: tuple[Fleet, str, k8s.CoreV1Api, str], kazoo_client: Any, tmp_path: Path
) -> None:
    f, db, core, ns = world
    things = uuids(20_000)
    insert_ids(db, "Thing", things)
    write_policy(f.policy_path, ns, Thing={"initInstances": 3, "resourcePerInstance": 5000})
    daemon = f.daemon()
    loop = threading.Thread(target=daemon.run, daemon=True)
    loop.start()
    daemon.watch_policy_file()  # edits below reach the loop through watchfiles
    try:
        eventually(lambda: len(read_layout(kazoo_client, "Thing")) == 5)
        before = read_layout(kazoo_client, "Thing")
        owner = {rid: i for i, inst in before.items() for rid in inst["ids"]}
        ticks = daemon.last_pass_at

        # Lower: 20,000 / 2,000 -> 11 instances; the 6 new ones must take their share.
        write_policy(f.policy_path, ns, Thing={"initInstances": 3, "resourcePerInstance": 2000})
        eventually(
            lambda: len(read_layout(kazoo_client, "Thing")) == 11 and daemon.last_pass_at != ticks
        )
        after = check_layout(kazoo_client, "Thing", set(things))
        moved = sum(1 for i, inst in after.items() for rid in inst["ids"] if owner[rid] != i)
        minimum = sum(len(inst["ids"]) for i, inst in after.items() if i not in before)
        assert minimum <= moved <= 1.05 * minimum
        eventually(lambda: {f"iota-dac-{i}" for i in range(11)} <= pod_names(core, ns))

        # Raise: back to 5 instances; surplus pods go, their ids are spread over the rest.
        write_policy(f.policy_path, ns, Thing={"initInstances": 3, "resourcePerInstance": 5000})
        eventually(lambda: len(read_layout(kazoo_client, "Thing")) == 5)
        check_layout(kazoo_client, "Thing", set(things))
        eventually(
            lambda: (
                not any(
                    name.startswith("iota-dac-") and int(name.rsplit("-", 1)[1]) >= 5
                    for name in pod_names(core, ns)
                )
            )
        )
    finally:
        daemon.stop()
        loop.join(10)


def test_over_max_instances_reports_an_error_and_loses_nothing(
    world: tuple[Fleet, str, k8s.CoreV1Api, str], kazoo_client: Any
) -> None:
    f, db, _, ns = world
    write_policy(
        f.policy_path, ns, Rule={"initInstances": 3, "maxInstances": 3, "resourcePerInstance": 100}
    )
    rules = uuids(250)
    insert_ids(db, "Rule", rules)
    f.tick()
    insert_ids(db, "Rule", uuids(100))
    result = f.tick()

    report = result.plan.reports["Rule"]
    assert report.error == "require instances more than the max: 4/3"
    assert report.unassigned == 50
    layout = read_layout(kazoo_client, "Rule")
    assert all(inst["node"]["used"] <= inst["node"]["count"] == 100 for inst in layout.values())
    assigned = {rid for inst in layout.values() for rid in inst["ids"]}
    assert set(rules) <= assigned and len(assigned) == 300
    daemon = f.daemon()
    f.loaded()  # the fleet's state (shared with the daemon) holds the policy
    assert daemon.status()["kinds"]["Rule"]["error"] == report.error


def test_a_pod_deleted_by_hand_or_failed_is_back_once_its_delete_is_seen(
    world: tuple[Fleet, str, k8s.CoreV1Api, str], kube: Any
) -> None:
    f, db, core, ns = world
    insert_ids(db, "Thing", uuids(100))
    f.tick()
    eventually(
        lambda: core.read_namespaced_pod("iota-dac-3", ns).status.phase == "Running", timeout=60
    )
    old_uid = core.read_namespaced_pod("iota-dac-4", ns).metadata.uid

    core.delete_namespaced_pod("iota-dac-3", ns, grace_period_seconds=0)
    core.patch_namespaced_pod(
        "iota-dac-4", ns, {"metadata": {"annotations": {"kwok.x-k8s.io/status": "custom"}}}
    )
    core.patch_namespaced_pod_status("iota-dac-4", ns, {"status": {"phase": "Failed"}})
    eventually(lambda: "iota-dac-3" not in pod_names(core, ns), timeout=60)

    # Level-triggered, like a ReplicaSet: this pass creates the missing pod and deletes the
    # Failed one (uid precondition); the pass after its delete is seen creates its successor.
    f.tick()
    eventually(
        lambda: (
            core.list_namespaced_pod(ns, field_selector="metadata.name=iota-dac-4").items == []
            or core.read_namespaced_pod("iota-dac-4", ns).metadata.uid != old_uid
        ),
        timeout=60,
    )
    f.tick()

    assert core.read_namespaced_pod("iota-dac-3", ns).metadata.deletion_timestamp is None
    new = core.read_namespaced_pod("iota-dac-4", ns)
    assert new.metadata.uid != old_uid and new.status.phase != "Failed"


def test_a_restarted_daemon_adopts_existing_state_with_zero_writes(
    world: tuple[Fleet, str, k8s.CoreV1Api, str], zk_hosts: str, kube: Any
) -> None:
    f, db, _, _ = world
    insert_ids(db, "Thing", uuids(7000))
    insert_ids(db, "Rule", uuids(600))
    f.tick()

    with fleet(zk_hosts, db, kube.api_client(), f.policy_path) as restarted:
        result = restarted.tick()
        assert result.plan.ops == ()
        assert restarted.writes() == (0, 0)


def test_an_unreachable_database_keeps_the_assignment_and_pods(
    world: tuple[Fleet, str, k8s.CoreV1Api, str], pg: Any, kazoo_client: Any
) -> None:
    f, db, core, ns = world
    things = uuids(500)
    insert_ids(db, "Thing", things)
    f.tick()
    before = read_layout(kazoo_client, "Thing")
    pg.stop()
    try:
        result = f.run()
        assert "rows" not in result.plan.reports["Thing"].blind  # last known rows kept
        assert result.plan.ops == ()
        assert read_layout(kazoo_client, "Thing") == before
        assert len(pod_names(core, ns)) == 13
    finally:
        pg.start()


def test_an_apiserver_outage_deletes_no_pod_and_rows_still_reach_zookeeper(
    world: tuple[Fleet, str, k8s.CoreV1Api, str], kube: Any, kazoo_client: Any
) -> None:
    f, db, core, ns = world
    insert_ids(db, "Thing", uuids(500))
    f.tick()
    uids = {p.metadata.name: p.metadata.uid for p in core.list_namespaced_pod(ns).items}
    assert len(uids) == 13

    kube.stop()
    try:
        more = uuids(8)  # within the instances' room: no new instance (whose pod would wait)
        insert_ids(db, "Thing", more)
        blind = f.run()
        assert "pods" in blind.plan.reports["Thing"].blind
        assert not [op for op in blind.plan.ops if "Pod" in type(op).__name__]
        assigned = {
            rid for inst in read_layout(kazoo_client, "Thing").values() for rid in inst["ids"]
        }
        assert set(more) <= assigned  # the assignment does not wait for the apiserver
    finally:
        kube.start()

    pod_writes = f.pods.writes
    f.tick()
    assert f.pods.writes == pod_writes  # back: nothing to recreate, nothing deleted
    assert {p.metadata.name: p.metadata.uid for p in core.list_namespaced_pod(ns).items} == uids


def test_a_zookeeper_outage_changes_nothing_and_the_return_converges(
    world: tuple[Fleet, str, k8s.CoreV1Api, str], zk: Any, kazoo_client: Any
) -> None:
    f, db, core, ns = world
    things = uuids(500)
    insert_ids(db, "Thing", things)
    f.tick()
    pods_before = {p.metadata.name: p.metadata.uid for p in core.list_namespaced_pod(ns).items}

    zk.stop()
    try:
        more = uuids(8)  # within the instances' room: no new instance, no new pod
        insert_ids(db, "Thing", more)
        blind = f.run()
        assert blind.plan.ops == ()  # no assignment seen: no instance, no pod is touched
        assert "zookeeper" in blind.plan.reports["Thing"].blind
    finally:
        zk.start()

    # Both clients reconnect by themselves; on a slow machine the outage may outlast a session
    # (kazoo then opens a new one, failing calls queued meanwhile), so converge by retrying.
    eventually(lambda: f.zk.session.connected and kazoo_client.connected, timeout=30)

    def converged() -> bool:
        f.tick()
        check_layout(kazoo_client, "Thing", set(things) | set(more))
        return True

    eventually(converged, timeout=30)
    assert {p.metadata.name: p.metadata.uid for p in core.list_namespaced_pod(ns).items} == (
        pods_before
    )
