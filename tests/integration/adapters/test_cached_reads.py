"""The caches under a pass (zk_cache.py, rows_cache.py, plan_memo.py) on the rig's real
ZooKeeper and PostgreSQL: a converged read costs nothing, and the cached path always plans
exactly what a full re-read would, whatever happened in between (row changes the daemon
was told of or not, other writers editing ZooKeeper by hand).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kazoo.client import KazooClient, KazooState

from reconciler.adapters.sql.inventory import Inventory, create_tables, delete_ids, insert_ids
from reconciler.adapters.sql.rows_cache import CachedRows
from reconciler.adapters.zookeeper.cache import CachedZkStore
from reconciler.adapters.zookeeper.session import ZkSession
from reconciler.adapters.zookeeper.store import ZkStore
from reconciler.domain.errors import Conflict
from reconciler.domain.id_strings import in_row_strings
from reconciler.domain.ids import SortedIds
from reconciler.domain.model import Instance, KindObserved, Observed
from reconciler.policy.loader import load_policy_and_templates
from reconciler.reconcile.pass_ports import Ports
from reconciler.reconcile.pipeline import run_pass
from reconciler.reconcile.planner import plan
from reconciler.state.daemon import DaemonState
from tests.support.fakes import FakePods
from tests.support.fleet import write_policy
from tests.support.polling import eventually

pytestmark = pytest.mark.integration

ROOT = "/iota/orchestration"
POLICY = {"resourcePerInstance": 20, "initInstances": 2, "maxInstances": 50}


@pytest.fixture
def cached(zk_hosts: str) -> Iterator[CachedZkStore]:
    session = ZkSession(zk_hosts, timeout=5.0)
    session.start()
    yield CachedZkStore(session)
    session.stop()


@pytest.fixture
def fresh(zk_hosts: str) -> Iterator[ZkStore]:
    session = ZkSession(zk_hosts, timeout=5.0)
    session.start()
    yield ZkStore(session)
    session.stop()


def _ids(n: int) -> frozenset[str]:
    return frozenset(str(uuid.uuid4()) for _ in range(n))


def test_a_converged_read_fetches_no_node_data(cached: CachedZkStore) -> None:
    for i in range(3):
        cached.write_instance("Thing", Instance(i, _ids(50), 60), create=True)
    first = cached.read("Thing")
    read_before = cached.session.bytes_read
    again = cached.read("Thing")
    assert again == first
    assert cached.session.bytes_read == read_before  # not one byte of node data


def test_our_own_write_is_not_read_back(cached: CachedZkStore) -> None:
    cached.write_instance("Thing", Instance(0, _ids(50), 60), create=True)
    before = cached.read("Thing")[0]
    written = cached.write_instance(
        "Thing", replace(before, ids=before.ids | _ids(5), reload_times=1), create=False
    )
    read_before = cached.session.bytes_read
    after = cached.read("Thing")[0]
    assert after == written and after.versions == written.versions
    assert cached.session.bytes_read == read_before  # the versions matched: its stats were enough


def test_another_writers_edit_is_seen_by_the_next_read(
    cached: CachedZkStore, kazoo_client: KazooClient
) -> None:
    cached.write_instance("Thing", Instance(0, _ids(5), 10), create=True)
    cached.write_instance("Thing", Instance(1, _ids(5), 10), create=True)
    cached.read("Thing")
    kazoo_client.set(f"{ROOT}/Thing/0/resources", json.dumps({"ids": ["x"]}).encode())
    kazoo_client.create(f"{ROOT}/Thing/1/tmp/status", b"", ephemeral=True)
    kazoo_client.create(f"{ROOT}/Thing/7", b'{"used":0,"count":10}')
    # No wait: the read itself waits for every watch of a change made before it.
    seen = cached.read("Thing")
    assert seen[0].ids == {"x"}
    assert seen[1].worker_session
    assert 7 in seen and not seen[7].complete
    kazoo_client.delete(f"{ROOT}/Thing/7", recursive=True)
    assert 7 not in cached.read("Thing")


def test_an_adopted_set_replaces_only_the_version_it_was_made_from(
    cached: CachedZkStore, kazoo_client: KazooClient
) -> None:
    for i in range(3):
        cached.write_instance("Thing", Instance(i, _ids(50), 60), create=True)
    cached.forget()
    parsed = cached.read("Thing")  # every id a string of its own, parsed from the JSON
    rows = SortedIds("".join(list(x)) for inst in parsed.values() for x in inst.ids)
    shared = in_row_strings({i: inst.ids for i, inst in parsed.items()}, rows.ordered)
    assert shared.keys() == {0, 1, 2}
    # Meanwhile: our own write of 1, another writer's edit of 2 (its watch has fired or not).
    written = cached.write_instance(
        "Thing", replace(parsed[1], ids=parsed[1].ids | _ids(1)), create=False
    )
    edit = list(rows.ordered[10:20])  # a run of the rows
    kazoo_client.set(f"{ROOT}/Thing/2/resources", json.dumps({"ids": edit}).encode())

    cached.adopt("Thing", shared, rows.ordered)
    read_before = cached.session.bytes_read
    after = cached.read("Thing")

    assert after[0].ids is shared[0] and after[0] == parsed[0]
    assert after[0].versions == parsed[0].versions and after[0].complete
    assert after[1] == written and after[1].ids is written.ids  # not undone
    assert after[2].ids == set(edit)  # the edit is read, not hidden by the adoption
    assert cached.session.bytes_read > read_before  # 2's data, and 2's only
    assert cached.read("Thing")[0].ids is shared[0]
    # ... and made of the rows' strings as it was parsed: no copy of them, not for a while
    row_of = {x: x for x in rows}
    assert all(x is row_of[x] for x in after[2].ids)


def expire_session(client: KazooClient, hosts: str) -> None:
    """End `client`'s session on the server, as an expiry would: a second connection takes the
    session over (its id and password) and closes it. `client` is cut off, finds its session
    gone when it reconnects (LOST) and goes on in a new one."""
    thief = KazooClient(hosts=hosts, client_id=client.client_id)
    thief.start(timeout=15)
    thief.stop()  # closes the session on the server
    thief.close()


def test_a_lost_session_forgets_the_cache(cached: CachedZkStore, zk_hosts: str) -> None:
    zk = cached.session
    cached.write_instance("Thing", Instance(0, _ids(5), 10), create=True)
    cached.read("Thing")
    read_before = zk.bytes_read
    cached.read("Thing")
    assert zk.bytes_read == read_before  # cached: the loss is what makes the next read full
    session = zk.client.client_id
    states: list[str] = []
    zk.client.add_listener(states.append)  # after the store's own listener
    expire_session(zk.client, zk_hosts)
    eventually(
        lambda: KazooState.LOST in states and zk.connected and zk.client.client_id != session,
        timeout=30,
        what="the session lost and a new one connected",
    )
    cached.read("Thing")
    assert zk.bytes_read > read_before  # read in full, with fresh watches


def test_full_read_seconds_zero_reads_everything_every_time(zk_hosts: str) -> None:
    session = ZkSession(zk_hosts, timeout=5.0)
    session.start()
    s = CachedZkStore(session, full_read_seconds=0)
    try:
        s.write_instance("Thing", Instance(0, _ids(5), 10), create=True)
        s.read("Thing")
        read_before = session.bytes_read
        s.read("Thing")
        assert session.bytes_read > read_before
    finally:
        session.stop()


def test_rows_are_pulled_again_only_when_the_table_changed(pg_url: str) -> None:
    create_tables(pg_url)
    insert_ids(pg_url, "Thing", _ids(100))
    rows = CachedRows(Inventory(pg_url))
    first = rows.ids("Thing")
    assert rows.ids("Thing") is first and rows.pulls == 1
    insert_ids(pg_url, "Thing", ["new-row"])
    assert rows.ids("Thing") == first | {"new-row"} and rows.pulls == 2
    delete_ids(pg_url, "Thing", ["new-row"])
    insert_ids(pg_url, "Thing", ["other-row"])  # same count, another id
    assert "other-row" in rows.ids("Thing") and rows.pulls == 3


# --- the cached path plans what a full re-read plans ------------------------------------

STEP = st.one_of(
    st.tuples(st.just("insert"), st.integers(1, 30)),
    st.tuples(st.just("insert-told"), st.integers(1, 30)),
    st.tuples(st.just("delete"), st.integers(1, 30)),
    st.tuples(st.just("pass"), st.just(0)),
    st.tuples(st.just("edit-resources"), st.integers(0, 6)),
    st.tuples(st.just("edit-count"), st.integers(0, 6)),
    st.tuples(st.just("delete-instance"), st.integers(0, 6)),
    st.tuples(st.just("add-instance"), st.integers(0, 9)),
    st.tuples(st.just("worker-node"), st.integers(0, 6)),
)


class World:
    """A database table and a ZooKeeper kind; the daemon's pass over the cached path, and
    a second, uncached way of reading both."""

    def __init__(self, pg_url: str, zk_hosts: str, client: KazooClient, folder: Path) -> None:
        self.pg_url, self.client = pg_url, client
        self.sessions = [ZkSession(zk_hosts, timeout=5.0) for _ in range(2)]
        for session in self.sessions:
            session.start()
        self.cached = CachedZkStore(self.sessions[0])
        self.fresh = ZkStore(self.sessions[1])
        self.inventory = Inventory(pg_url)
        self.state = DaemonState()
        policy = write_policy(folder / "policy.yaml", "ns", Thing=POLICY, Rule=POLICY)
        self.state.policy_accepted(*load_policy_and_templates(policy))
        self.ports = Ports(store=self.cached, rows=CachedRows(Inventory(pg_url)), pods=FakePods())
        self.table: list[str] = []

    def close(self) -> None:
        for session in self.sessions:
            session.stop()

    def observe(self, cached: bool) -> Observed:
        store = self.cached if cached else self.fresh
        rows = self.ports.rows if cached else self.inventory
        return Observed(
            0.0,
            {k: KindObserved(k, rows.ids(k), store.read(k), {}) for k in ("Thing", "Rule")},
            0.0,
        )

    def step(self, action: str, n: int) -> None:
        base = f"{ROOT}/Thing/{n}"
        if action == "insert":
            new = [str(uuid.uuid4()) for _ in range(n)]
            insert_ids(self.pg_url, "Thing", new)
            self.table += new
        elif action == "insert-told":  # the row event arrives: an event pass
            new = [str(uuid.uuid4()) for _ in range(n)]
            insert_ids(self.pg_url, "Thing", new)
            self.table += new
            self.state.rows.patch("Thing", new, [])
            run_pass(self.ports, self.state, trigger="event", full=False, kinds=["Thing"])
        elif action == "delete":
            gone, self.table = self.table[:n], self.table[n:]
            delete_ids(self.pg_url, "Thing", gone)
        elif action == "pass":
            run_pass(self.ports, self.state, trigger="tick")
        elif action == "add-instance":
            if not self.client.exists(base):
                self.client.create(base, b'{"used":0,"count":20}', makepath=True)
        elif not self.client.exists(f"{base}/tmp"):
            return  # no such instance (now)
        elif action == "edit-resources":
            ids = [*self.table[: n + 1], "phantom"]
            self.client.set(f"{base}/resources", json.dumps({"ids": ids}).encode())
        elif action == "edit-count":
            self.client.set(base, json.dumps({"used": 0, "count": 3 + n}).encode())
        elif action == "delete-instance":
            self.client.delete(base, recursive=True)
        elif action == "worker-node":
            self.client.create(f"{base}/tmp/w-", b"", ephemeral=True, sequence=True)


def _plans_agree(world: World) -> None:
    by_cache, by_read = world.observe(cached=True), world.observe(cached=False)
    policies = world.state.policies()
    intents = world.state.intents(policies)
    for kind in policies:
        a, b = by_cache.kinds[kind].assignment, by_read.kinds[kind].assignment
        assert a == b
        assert {i: x.versions for i, x in a.items()} == {i: x.versions for i, x in b.items()}
        assert by_cache.kinds[kind].row_ids == by_read.kinds[kind].row_ids
    cached_plan = plan(policies, by_cache, intents, world.state.plan_memo)
    full_plan = plan(policies, by_read, intents)
    assert cached_plan == full_plan


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=st.lists(STEP, min_size=3, max_size=14))
def test_the_cached_path_plans_what_a_full_re_read_plans(
    steps: list[tuple[str, int]], pg: Any, zk: Any, tmp_path_factory: pytest.TempPathFactory
) -> None:
    db = pg.create_database(f"c{uuid.uuid4().hex[:8]}")
    create_tables(db)
    chroot = f"/p-{uuid.uuid4().hex[:8]}"
    client = KazooClient(hosts=zk.hosts)
    client.start()
    client.ensure_path(chroot)
    client.stop()
    client = KazooClient(hosts=zk.hosts + chroot)
    client.start()
    world = World(db, zk.hosts + chroot, client, tmp_path_factory.mktemp("policy"))
    try:
        world.step("insert", 30)
        world.step("pass", 0)
        for action, n in steps:
            world.step(action, n)
            _plans_agree(world)
    finally:
        world.close()
        client.stop()


def test_a_count_change_does_not_send_the_resources_again(
    fresh: ZkStore, kazoo_client: KazooClient
) -> None:
    ids = _ids(100)
    first = fresh.write_instance("Thing", Instance(0, ids, 100), create=True)
    _, stat = kazoo_client.get(f"{ROOT}/Thing/0/resources")
    written = fresh.write_instance(
        "Thing", replace(first, count=120), create=False, count_only=True
    )
    assert kazoo_client.get(f"{ROOT}/Thing/0")[0] == b'{"used":100,"count":120}'
    _, after = kazoo_client.get(f"{ROOT}/Thing/0/resources")
    assert after.mzxid == stat.mzxid  # not written, not even with the same bytes
    assert written.versions is not None and written.versions.resources == stat.version
    # Still a compare-and-set: the resources as read, or nothing at all.
    kazoo_client.set(f"{ROOT}/Thing/0/resources", b'{"ids":["x"]}')
    with pytest.raises(Conflict):
        fresh.write_instance("Thing", replace(written, count=130), create=False, count_only=True)
    assert kazoo_client.get(f"{ROOT}/Thing/0")[0] == b'{"used":100,"count":120}'
