"""Leader election with real `reconciler run` processes on the rig: one writer, always.

Every daemon runs with a 6 s ZooKeeper session (RECONCILER_ZK_SESSION_TIMEOUT) on the rig's
ZooKeeper (tickTime 500 ms), MQTT and Kafka off: a row change reaches ZooKeeper on the next
full pass, which a new leader runs the moment it wins.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from kubernetes import client as k8s

from reconciler.adapters.sql.inventory import insert_ids
from reconciler.domain.podspec import CREATED_BY_ANNOTATION
from tests.support.fleet import eventually, read_layout, seed, uuids, write_policy
from tests.support.processes import DaemonProcess, leaders, wait_for_leader

SESSION = 6.0  # RECONCILER_ZK_SESSION_TIMEOUT of every daemon here


@pytest.fixture
def start(
    tmp_path: Path, zk_hosts: str, pg_url: str, kube: Any, kube_namespace: str
) -> Iterator[Any]:
    seed(pg_url, things=300, rules=40)
    started: list[DaemonProcess] = []

    def run(n: int, tick: float = 1) -> list[DaemonProcess]:
        """`n` more daemons; `tick`: seconds between full passes (policy.yaml)."""
        policy = write_policy(
            tmp_path / "policy.yaml",
            kube_namespace,
            tick=tick,
            Thing={"initInstances": 3, "maxInstances": 10},
            Rule={"initInstances": 3, "maxInstances": 10},
        )
        for _ in range(n):
            name = f"d{len(started)}"
            started.append(DaemonProcess(tmp_path, zk_hosts, pg_url, kube, policy, name))
        return started[-n:]

    yield run
    for d in started:
        d.close()


def passed_since(daemon: DaemonProcess, at: float) -> bool:
    """The daemon finished a pass after `at` (Unix seconds), by its status."""
    status = daemon.status()
    return bool(status and (status["lastPass"]["at"] or 0) > at)


def created_by(kube: Any, namespace: str, pod: str) -> str | None:
    """The identity of the daemon that created `pod` (None: no such pod, or no annotation)."""
    with kube.api_client() as api:
        try:
            found = k8s.CoreV1Api(api).read_namespaced_pod(pod, namespace)
        except k8s.ApiException as e:
            if e.status == 404:
                return None
            raise
    return (found.metadata.annotations or {}).get(CREATED_BY_ANNOTATION)


def assigned(kazoo: Any, kind: str = "Thing") -> dict[str, int]:
    """id -> instance, read from ZooKeeper directly; an id found twice fails here."""
    owner: dict[str, int] = {}
    for i, inst in read_layout(kazoo, kind).items():
        for rid in inst["ids"]:
            assert rid not in owner, f"{rid} on instances {owner[rid]} and {i}"
            owner[rid] = i
    return owner


def converged(kazoo: Any, pg_ids: set[str], core: k8s.CoreV1Api, ns: str) -> bool:
    """Invariants: every row on exactly one instance, one live pod per instance."""
    layout = read_layout(kazoo, "Thing")
    if set(assigned(kazoo)) != pg_ids:
        return False
    pods = [
        p.metadata.name
        for p in core.list_namespaced_pod(ns).items
        if p.metadata.deletion_timestamp is None and p.metadata.name.startswith("iota-dac-")
    ]
    return sorted(pods) == sorted(f"iota-dac-{i}" for i in layout)


def test_exactly_one_leader_and_every_write_comes_from_it(
    start: Any, pg_url: str, kazoo_client: Any, kube: Any, kube_namespace: str
) -> None:
    daemons = start(3)
    leader = wait_for_leader(daemons)
    eventually(lambda: len(read_layout(kazoo_client, "Thing")) == 3, timeout=60)

    # 30 s of row churn while we sample every daemon's role.
    added: list[str] = []
    deadline = time.monotonic() + 30
    samples = 0
    while time.monotonic() < deadline:
        batch = uuids(5)
        insert_ids(pg_url, "Thing", batch)
        added += batch
        now_leading = leaders(daemons)
        assert len(now_leading) <= 1, [d.identity for d in now_leading]
        assert now_leading == [leader]
        samples += 1
        time.sleep(0.3)  # a sample every 0.3 s for the 30 s under test
    assert samples > 50

    eventually(lambda: set(added) <= set(assigned(kazoo_client)), timeout=30)
    for d in daemons:
        if d is not leader:
            assert d.applied() == [], f"standby {d.identity} applied {d.applied()[:3]}"
    assert leader.applied()
    with kube.api_client() as api:
        pods = k8s.CoreV1Api(api).list_namespaced_pod(kube_namespace).items
    creators = {(p.metadata.annotations or {}).get(CREATED_BY_ANNOTATION) for p in pods}
    assert creators == {leader.identity}
    for d in daemons:
        status = d.status()
        assert status is not None and status["leadership"]["leader"] == leader.identity
        assert status["lastPass"]["standby"] is (d is not leader)  # a standby applies nothing
        base = f"http://127.0.0.1:{d.port}"
        metrics = httpx.get(f"{base}/metrics", timeout=5).text
        mine = 1 if d is leader else 0
        assert f'reconciler_leader{{identity="{d.identity}"}} {mine}.0' in metrics
        assert httpx.get(f"{base}/readyz", timeout=5).status_code == 200  # standbys too
        if d is not leader:
            # A write sent to a standby is forwarded to the leader, which applies it.
            post = httpx.post(f"{base}/v1/api/orchestrations/Thing/orchestrate", timeout=90)
            assert post.status_code == 200, post.text
            assert post.headers["X-Reconciler-Leader"] == leader.identity
            assert d.applied() == []


def failover(
    start: Any, pg_url: str, kazoo: Any, sig: int
) -> tuple[float, DaemonProcess, DaemonProcess]:
    """Two daemons; signal the leader, insert a row at once; seconds until the row is in
    ZooKeeper (the standby won and applied it), the old leader and the other daemon. The tick
    is long: the row stays pending until a leader's first pass picks it up."""
    daemons = start(2, tick=60)
    leader = wait_for_leader(daemons)
    eventually(lambda: len(read_layout(kazoo, "Thing")) == 3, timeout=60)
    (other,) = [d for d in daemons if d is not leader]
    row = uuids(1)[0]
    insert_ids(pg_url, "Thing", [row])  # pending: committed, not yet seen by the leader's tick
    leader.signal(sig)
    t0 = time.monotonic()
    eventually(lambda: row in assigned(kazoo), timeout=SESSION + 10, interval=0.02)
    return time.monotonic() - t0, leader, other


def test_sigkill_of_the_leader_a_standby_applies_a_pending_row_within_the_session(
    start: Any, pg_url: str, kazoo_client: Any
) -> None:
    took, _, other = failover(start, pg_url, kazoo_client, signal.SIGKILL)
    print(f"\nFIGURE failover after SIGKILL: {took:.2f}s (session timeout {SESSION:g}s)")
    assert took <= SESSION + 1.0
    assert other.role() == "leader"


def test_sigterm_hands_leadership_over_at_once(start: Any, pg_url: str, kazoo_client: Any) -> None:
    took, leader, other = failover(start, pg_url, kazoo_client, signal.SIGTERM)
    print(f"\nFIGURE failover after SIGTERM: {took:.2f}s")
    assert took <= 2.0  # 1 s + one pass
    assert leader.proc.wait(timeout=10) == 0
    assert other.role() == "leader"


def test_a_paused_leader_writes_nothing_when_it_resumes_and_rejoins_as_standby(
    start: Any, pg_url: str, kazoo_client: Any, kube: Any, kube_namespace: str
) -> None:
    daemons = start(2)
    old = wait_for_leader(daemons)
    eventually(lambda: len(read_layout(kazoo_client, "Thing")) == 3, timeout=60)
    # Its first passes done: nothing in flight when it is paused.
    eventually(lambda: (s := old.status()) and s["lastPass"]["ops"] == 0, timeout=30)
    (new,) = [d for d in daemons if d is not old]
    old.signal(signal.SIGSTOP)
    try:
        eventually(lambda: new.role() == "leader", timeout=SESSION + 10)
        # Work for whoever leads: new rows (more instances) and a pod to replace.
        insert_ids(pg_url, "Thing", uuids(40))
        with kube.api_client() as api:
            k8s.CoreV1Api(api).delete_namespaced_pod(
                "iota-dac-0", kube_namespace, grace_period_seconds=0
            )
    finally:
        resumed = time.time()
        old.signal(signal.SIGCONT)
    eventually(lambda: old.role() == "standby", timeout=30)
    standby_at = time.time()
    # Passes on both sides: the new leader's replaced the pod, the old one planned as a standby.
    eventually(lambda: created_by(kube, kube_namespace, "iota-dac-0") == new.identity, timeout=30)
    eventually(lambda: passed_since(old, standby_at) and passed_since(new, standby_at), timeout=30)
    story = [
        (d.identity, e.get("timestamp"), e.get("event"), e.get("op"), e.get("instance_id"))
        for d in (old, new)
        for e in d.events()
        if e.get("event") in ("leadership acquired", "leadership lost", "role", "reconciled")
        or e.get("event") == "operation applied"
    ]
    assert old.applied(after=resumed) == [], (resumed, story)
    assert any(e.get("event") == "leadership lost" for e in old.events(after=resumed))
    assert leaders(daemons) == [new]


def test_zookeeper_restarted_under_two_daemons_one_leader_and_the_invariants_hold(
    start: Any, pg_url: str, zk: Any, kazoo_client: Any, kube: Any, kube_namespace: str
) -> None:
    daemons = start(2)
    wait_for_leader(daemons)
    eventually(lambda: len(read_layout(kazoo_client, "Thing")) == 3, timeout=60)
    zk.stop()
    insert_ids(pg_url, "Thing", uuids(25))
    time.sleep(2)  # the outage under test: ZooKeeper down for 2 s
    zk.start()
    leader = wait_for_leader(daemons, timeout=60)
    with kube.api_client() as api:
        core = k8s.CoreV1Api(api)
        from sqlalchemy import create_engine, text

        engine = create_engine(pg_url.replace("postgresql://", "postgresql+psycopg://", 1))
        with engine.connect() as conn:
            ids = {str(r[0]) for r in conn.execute(text('SELECT id FROM "Thing"'))}
        engine.dispose()
        eventually(lambda: converged(kazoo_client, ids, core, kube_namespace), timeout=60)
    assert leaders(daemons) == [leader]


def test_a_transaction_fenced_by_a_lock_node_that_is_gone_writes_nothing(
    zk_hosts: str, kazoo_client: Any
) -> None:
    from reconciler.adapters.zookeeper.session import ZkSession
    from reconciler.adapters.zookeeper.store import ZkStore
    from reconciler.domain.errors import NotLeader
    from reconciler.domain.model import Instance

    fence: list[tuple[str, int] | None] = [None]  # what the election would answer now
    session = ZkSession(zk_hosts)
    session.start()
    store = ZkStore(session, fence=lambda: fence[0])
    try:
        kazoo_client.ensure_path("/iota/orchestration/_leader")
        token = kazoo_client.create(
            "/iota/orchestration/_leader/x__lock__", b"me", ephemeral=True, sequence=True
        )
        fence[0] = (token, 0)
        store.write_instance("Thing", Instance(0, frozenset({"a"}), 5), create=True)
        assert assigned(kazoo_client) == {"a": 0}

        kazoo_client.delete(token)  # our session's lock node is gone: we were deposed
        with pytest.raises(NotLeader):
            store.write_instance("Thing", Instance(0, frozenset({"a", "b"}), 5), create=False)
        with pytest.raises(NotLeader):
            store.delete_instance("Thing", 0)
        fence[0] = None  # not leading at all: nothing is even sent
        with pytest.raises(NotLeader):
            store.write_instance("Thing", Instance(1, frozenset({"c"}), 5), create=True)
        assert assigned(kazoo_client) == {"a": 0}
    finally:
        session.stop()


def test_daemon_groups_elect_a_leader_each_and_one_per_group(zk_hosts: str) -> None:
    from kazoo.client import KazooClient

    from reconciler.adapters.zookeeper.election import ZkElection

    clients = [KazooClient(hosts=zk_hosts, timeout=6) for _ in range(3)]
    for c in clients:
        c.start(timeout=10)
    things_a = ZkElection(clients[0], "/iota/orchestration", "a", group="things")
    things_b = ZkElection(clients[1], "/iota/orchestration", "b", group="things")
    rules_c = ZkElection(clients[2], "/iota/orchestration", "c", group="rules")
    elections = [things_a, things_b, rules_c]
    try:
        for e in elections:
            e.start()
        eventually(lambda: rules_c.is_leader and (things_a.is_leader != things_b.is_leader))
        first, second = (things_a, things_b) if things_a.is_leader else (things_b, things_a)
        assert second.leader() == first.identity and rules_c.leader() == "c"
        first.release()
        eventually(lambda: second.is_leader, timeout=5)
        assert rules_c.is_leader
    finally:
        for e in elections:
            e.release()
        for c in clients:
            c.stop()
            c.close()
