"""ZkStore against a real ZooKeeper (fixtures from tests/support/servers.py).

Every test gets its own chroot (`zk_hosts`), so they can share one server. The raw bytes
are checked with a separate kazoo client: the workers are Node.js programs that read those
bytes, so "round-trips through our own reader" is not enough.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import ConnectionLoss
from kazoo.security import make_acl

from reconciler.adapters.zookeeper.session import ZkSession
from reconciler.adapters.zookeeper.store import ZkStore, ZkTransactionError
from reconciler.domain.errors import Conflict, SourceUnavailable
from reconciler.domain.model import Instance, NodeVersions
from tests.support.polling import eventually

pytestmark = pytest.mark.integration

ROOT = "/iota/orchestration"


@pytest.fixture
def store(zk_hosts: str) -> Iterator[ZkStore]:
    session = ZkSession(zk_hosts, timeout=5.0)
    session.start()
    yield ZkStore(session)
    session.stop()


def raw(client: KazooClient, path: str) -> bytes:
    data, _stat = client.get(path)
    return data


def test_layout_is_byte_exact(store: ZkStore, kazoo_client: KazooClient) -> None:
    # Ids deliberately unsorted and one non-ASCII: JSON.stringify writes raw UTF-8.
    inst = Instance(instance_id=3, ids=frozenset({"b-2", "a-1", "é"}), count=5, reload_times=4)
    store.write_instance("Thing", inst, create=True)

    base = f"{ROOT}/Thing/3"
    assert raw(kazoo_client, base) == b'{"used":3,"count":5}'
    assert raw(kazoo_client, f"{base}/resources") == '{"ids":["a-1","b-2","é"]}'.encode()
    assert raw(kazoo_client, f"{base}/_reload") == b'{"times":4}'
    assert raw(kazoo_client, f"{base}/tmp") == b""
    assert sorted(kazoo_client.get_children(base)) == ["_reload", "resources", "tmp"]
    assert kazoo_client.get_children(f"{ROOT}/Thing") == ["3"]


def test_write_then_read_round_trip(store: ZkStore) -> None:
    assert store.read("Thing") == {}  # no kind node yet: empty, not an error
    written = {
        0: Instance(0, frozenset({"x", "y"}), count=3, reload_times=1),
        1: Instance(1, frozenset(), count=3, reload_times=0),
        12: Instance(12, frozenset({"z"}), count=3, reload_times=9),
    }
    for inst in written.values():
        store.write_instance("Thing", inst, create=True)
    store.write_instance("Rule", Instance(0, frozenset({"r"}), count=1), create=True)

    assert store.read("Thing") == written
    assert store.read("Rule") == {0: Instance(0, frozenset({"r"}), count=1)}
    # Overwrite one instance: set, not create.
    changed = Instance(0, frozenset({"y", "w"}), count=4, reload_times=2)
    store.write_instance("Thing", changed, create=False)
    assert store.read("Thing")[0] == changed


def test_each_write_is_one_transaction_and_reads_write_nothing(store: ZkStore) -> None:
    store.write_instance("Thing", Instance(0, frozenset({"a"}), count=2), create=True)
    store.write_instance("Thing", Instance(1, frozenset({"b"}), count=2), create=True)
    after_writes = store.session.writes
    # 1 for the parent path, then exactly one commit per instance.
    assert after_writes == 3
    for _ in range(3):
        store.read("Thing")
    assert store.session.writes == after_writes


def test_reload_times_are_stored_as_given(store: ZkStore, kazoo_client: KazooClient) -> None:
    ids = frozenset({"a"})
    store.write_instance("Thing", Instance(0, ids, count=2, reload_times=0), create=True)
    assert raw(kazoo_client, f"{ROOT}/Thing/0/_reload") == b'{"times":0}'
    store.write_instance("Thing", Instance(0, ids | {"b"}, 2, reload_times=7), create=False)
    assert raw(kazoo_client, f"{ROOT}/Thing/0/_reload") == b'{"times":7}'
    assert store.read("Thing")[0].reload_times == 7


def test_failed_op_rolls_back_the_whole_instance(store: ZkStore, kazoo_client: KazooClient) -> None:
    """One transaction per instance: when one node cannot be written, none is."""
    base = f"{ROOT}/Thing/0"
    store.write_instance("Thing", Instance(0, frozenset({"a"}), 2, reload_times=1), create=True)
    before = {p: raw(kazoo_client, p) for p in (base, f"{base}/_reload", f"{base}/resources")}
    writes = store.session.writes
    # Make the last op of the transaction fail: resources becomes read-only.
    kazoo_client.set_acls(f"{base}/resources", [make_acl("world", "anyone", read=True)])

    new = Instance(0, frozenset({"a", "b"}), count=5, reload_times=2)
    with pytest.raises(ZkTransactionError) as caught:
        store.write_instance("Thing", new, create=False)

    assert caught.value.path == f"{base}/resources"
    assert f"{base}/resources" in str(caught.value)
    assert {p: raw(kazoo_client, p) for p in before} == before  # base and _reload untouched
    assert store.session.writes == writes


def test_repair_recreates_missing_children(store: ZkStore, kazoo_client: KazooClient) -> None:
    base = f"{ROOT}/Thing/0"
    inst = Instance(0, frozenset({"a", "b"}), count=2, reload_times=1)
    store.write_instance("Thing", inst, create=True)
    kazoo_client.delete(f"{base}/_reload")
    kazoo_client.delete(f"{base}/tmp")

    broken = store.read("Thing")[0]
    assert not broken.complete
    assert broken.ids == inst.ids  # what could be read is kept

    writes = store.session.writes
    repaired = Instance(0, inst.ids, count=2, reload_times=2)
    store.write_instance("Thing", repaired, create=False)
    assert store.session.writes == writes + 1  # the missing nodes came in the same transaction
    assert raw(kazoo_client, f"{base}/_reload") == b'{"times":2}'
    assert kazoo_client.exists(f"{base}/tmp") is not None
    assert store.read("Thing")[0] == repaired


def test_write_keeps_worker_status_under_tmp(store: ZkStore, kazoo_client: KazooClient) -> None:
    base = f"{ROOT}/Thing/0"
    store.write_instance("Thing", Instance(0, frozenset({"a"}), 2), create=True)
    kazoo_client.create(f"{base}/tmp/status", b"running")
    store.write_instance("Thing", Instance(0, frozenset({"a", "b"}), 2, 1), create=False)
    assert raw(kazoo_client, f"{base}/tmp/status") == b"running"


def test_an_ephemeral_node_under_tmp_reads_as_a_live_worker_session_until_it_ends(
    store: ZkStore, kazoo_client: KazooClient, zk_hosts: str
) -> None:
    for i in range(3):
        store.write_instance("Thing", Instance(i, frozenset({f"id-{i}"}), 2), create=True)
    # A worker's own session (another client, as the Go worker is): instance 1's status is
    # ephemeral; instance 2 has only a persistent child there, which proves nothing.
    worker = KazooClient(hosts=zk_hosts, timeout=10)
    worker.start(timeout=15)
    try:
        worker.create(f"{ROOT}/Thing/1/tmp/status", b"running", ephemeral=True)
        kazoo_client.create(f"{ROOT}/Thing/2/tmp/leftover", b"")
        sessions = {i: inst.worker_session for i, inst in store.read("Thing").items()}
        assert sessions == {0: False, 1: True, 2: False}

        # Our writes keep the workers' tmp children: the node is still the worker's.
        store.write_instance("Thing", Instance(1, frozenset({"id-1", "new"}), 2, 1), create=False)
        _data, stat = kazoo_client.get(f"{ROOT}/Thing/1/tmp/status")
        assert stat.ephemeralOwner == worker.client_id[0]
        assert store.read("Thing")[1].worker_session is True
    finally:
        worker.stop()  # the session ends: ZooKeeper deletes its ephemeral nodes
        worker.close()
    assert store.read("Thing")[1] == Instance(1, frozenset({"id-1", "new"}), 2, 1)
    assert kazoo_client.get_children(f"{ROOT}/Thing/2/tmp") == ["leftover"]


def test_delete_removes_worker_created_children(store: ZkStore, kazoo_client: KazooClient) -> None:
    store.write_instance("Thing", Instance(0, frozenset({"a"}), 2), create=True)
    store.write_instance("Thing", Instance(1, frozenset({"b"}), 2), create=True)
    base = f"{ROOT}/Thing/1"
    kazoo_client.create(f"{base}/tmp/status", b"running")
    kazoo_client.create(f"{base}/tmp/status/detail", b"x")
    kazoo_client.create(f"{base}/extra", b"")

    writes = store.session.writes
    store.delete_instance("Thing", 1)
    assert store.session.writes == writes + 1
    assert kazoo_client.exists(base) is None
    assert list(store.read("Thing")) == [0]

    store.delete_instance("Thing", 1)  # already gone: done, no error, no write
    store.delete_instance("Rule", 4)  # kind never existed
    assert store.session.writes == writes + 1


def test_5000_uuid_ids_fit_in_one_instance(store: ZkStore, kazoo_client: KazooClient) -> None:
    ids = frozenset(str(uuid.uuid4()) for _ in range(5000))
    inst = Instance(0, ids, count=5000, reload_times=1)

    started = time.perf_counter()
    store.write_instance("Thing", inst, create=True)
    wrote = time.perf_counter() - started
    started = time.perf_counter()
    back = store.read("Thing")
    read = time.perf_counter() - started

    size = len(raw(kazoo_client, f"{ROOT}/Thing/0/resources"))
    print(
        f"\n5000 UUID ids: resources node {size} bytes, write {wrote * 1000:.0f} ms, "
        f"read {read * 1000:.0f} ms"
    )
    assert back == {0: inst}
    assert 180_000 < size < 1_000_000


def test_malformed_nodes_read_as_incomplete(store: ZkStore, kazoo_client: KazooClient) -> None:
    for i in range(4):
        store.write_instance("Thing", Instance(i, frozenset({f"id{i}"}), 2, 1), create=True)
    thing = f"{ROOT}/Thing"
    kazoo_client.set(f"{thing}/0/resources", b"{not json")
    kazoo_client.set(f"{thing}/1/_reload", b'{"times":"7"}')
    kazoo_client.set(f"{thing}/2", b"\xff\xfe")  # not even UTF-8
    # Foreign nodes next to the instances: ignored, not instances, not errors.
    kazoo_client.create(f"{thing}/lock", b"")
    kazoo_client.create(f"{thing}/01", b"")

    got = store.read("Thing")

    assert sorted(got) == [0, 1, 2, 3]
    assert not got[0].complete and got[0].ids == frozenset() and got[0].count == 2
    assert not got[1].complete and got[1].ids == {"id1"}
    assert not got[2].complete and got[2].ids == {"id2"}
    assert got[3] == Instance(3, frozenset({"id3"}), 2, 1)


def test_stale_used_reads_as_incomplete(store: ZkStore, kazoo_client: KazooClient) -> None:
    store.write_instance("Thing", Instance(0, frozenset({"a", "b"}), 3), create=True)
    kazoo_client.set(f"{ROOT}/Thing/0", b'{"used":1,"count":3}')
    assert not store.read("Thing")[0].complete


def test_start_fails_fast_when_nothing_listens() -> None:
    s = ZkSession("127.0.0.1:1", timeout=1.0)
    started = time.monotonic()
    with pytest.raises(SourceUnavailable):
        s.start()
    assert time.monotonic() - started < 5
    assert not s.connected
    s.stop()


def test_zookeeper_outage_raises_source_unavailable_then_recovers(zk: Any, zk_hosts: str) -> None:
    session = ZkSession(zk_hosts, timeout=3.0)
    session.start()
    store = ZkStore(session)
    inst = Instance(0, frozenset({"a"}), count=2, reload_times=1)
    try:
        store.write_instance("Thing", inst, create=True)
        assert store.session.connected
        zk.stop()
        try:
            took: list[float] = []
            for call in (
                lambda: store.read("Thing"),
                lambda: store.write_instance("Thing", inst, create=False),
                lambda: store.delete_instance("Thing", 0),
            ):
                started = time.monotonic()
                with pytest.raises(SourceUnavailable):
                    call()
                took.append(time.monotonic() - started)
            print(f"\nSourceUnavailable after {', '.join(f'{t:.2f}s' for t in took)}")
            assert took[0] < 3.0 + 2.0  # the store's timeout (it may be a blip), plus slack
            # Disconnected for longer than the timeout: later calls give up at once.
            assert max(took[1:]) < 1.0
            assert not store.session.connected
        finally:
            zk.start()
        # The same store, not a new one: kazoo reconnects by itself.
        started = time.monotonic()
        # Any answer will do: until then, read raises SourceUnavailable (re-raised at 30 s).
        eventually(lambda: store.read("Thing") is not None, timeout=30, interval=0.2)
        print(f"reconnected {time.monotonic() - started:.2f}s after the server was back")
        assert store.session.connected
        newer = Instance(0, frozenset({"a", "b"}), count=2, reload_times=2)
        store.write_instance("Thing", newer, create=False)  # it exists: a create would conflict
        assert store.read("Thing") == {0: newer}
    finally:
        session.stop()


# --- compare-and-set (issue 12): a write never overwrites another writer's change -------


def test_a_write_on_the_versions_read_fails_if_another_writer_changed_the_instance(
    store: ZkStore, kazoo_client: KazooClient
) -> None:
    store.write_instance("Thing", Instance(0, frozenset({"a"}), 3, 1), create=True)
    read = store.read("Thing")[0]
    assert read.versions is not None
    theirs = b'{"ids":["a","theirs"]}'
    kazoo_client.set(f"{ROOT}/Thing/0/resources", theirs)  # between our read and our write
    writes = store.session.writes

    with pytest.raises(Conflict) as caught:
        store.write_instance(
            "Thing", replace(read, ids=frozenset({"a", "ours"}), reload_times=2), create=False
        )

    assert "another writer" in str(caught.value)
    assert raw(kazoo_client, f"{ROOT}/Thing/0/resources") == theirs  # nothing overwritten
    assert raw(kazoo_client, f"{ROOT}/Thing/0/_reload") == b'{"times":1}'
    assert store.session.writes == writes
    again = store.read("Thing")[0]  # a re-read sees their change, and writes on it
    store.write_instance(
        "Thing", replace(again, ids=frozenset({"a", "ours"}), reload_times=2), create=False
    )
    assert raw(kazoo_client, f"{ROOT}/Thing/0/resources") == b'{"ids":["a","ours"]}'


def test_a_write_returns_the_versions_it_left_and_the_versions_before_it_are_stale(
    store: ZkStore, kazoo_client: KazooClient
) -> None:
    created = store.write_instance("Thing", Instance(0, frozenset({"a"}), 3, 0), create=True)
    assert created.versions == NodeVersions(0, 0, 0)
    read = store.read("Thing")[0]
    first = store.write_instance(
        "Thing", replace(read, ids=frozenset({"a", "b"}), reload_times=1), create=False
    )
    _data, stat = kazoo_client.get(f"{ROOT}/Thing/0/resources")
    assert first.versions == store.read("Thing")[0].versions
    assert first.versions is not None and first.versions.resources == stat.version == 1
    # On the versions the last write left: goes through (the event fast path does this).
    store.write_instance(
        "Thing", replace(first, ids=frozenset({"b"}), reload_times=2), create=False
    )
    # On the versions read before that write: stale.
    with pytest.raises(Conflict):
        store.write_instance(
            "Thing", replace(read, ids=frozenset({"c"}), reload_times=9), create=False
        )
    assert store.read("Thing")[0] == Instance(0, frozenset({"b"}), 3, 2)


def test_a_write_on_known_versions_is_one_request_and_lists_no_children(
    store: ZkStore, kazoo_client: KazooClient
) -> None:
    created = store.write_instance("Thing", Instance(0, frozenset({"a"}), 3, 0), create=True)
    calls: list[str] = []
    client = store.session.client
    original = client.get_children_async
    client.get_children_async = lambda *a, **k: calls.append("ls") or original(*a, **k)  # type: ignore[method-assign]
    try:
        store.write_instance(
            "Thing", replace(created, ids=frozenset({"a", "b"}), reload_times=1), create=False
        )
    finally:
        client.get_children_async = original  # type: ignore[method-assign]
    assert calls == []
    assert raw(kazoo_client, f"{ROOT}/Thing/0/resources") == b'{"ids":["a","b"]}'


def test_a_write_on_known_versions_is_a_conflict_if_tmp_was_removed_meanwhile(
    store: ZkStore, kazoo_client: KazooClient
) -> None:
    created = store.write_instance("Thing", Instance(0, frozenset({"a"}), 3, 0), create=True)
    kazoo_client.delete(f"{ROOT}/Thing/0/tmp")  # not versioned: checked in the transaction

    with pytest.raises(Conflict):
        store.write_instance(
            "Thing", replace(created, ids=frozenset({"a", "b"}), reload_times=1), create=False
        )

    assert raw(kazoo_client, f"{ROOT}/Thing/0/resources") == b'{"ids":["a"]}'  # nothing written
    reread = store.read("Thing")[0]
    assert not reread.complete  # "tmp missing": the next plan rewrites the instance
    store.write_instance("Thing", replace(reread, ids=frozenset({"a", "b"})), create=False)
    assert kazoo_client.exists(f"{ROOT}/Thing/0/tmp") is not None


def test_a_write_whose_commit_landed_before_the_connection_was_lost_is_no_conflict_on_retry(
    store: ZkStore, kazoo_client: KazooClient
) -> None:
    read = store.write_instance("Thing", Instance(0, frozenset({"a"}), 3, 0), create=True)
    commit = store.session.commit
    lost: list[str] = []

    def commit_then_lose_the_answer(*args: Any, **kw: Any) -> Any:
        result = commit(*args, **kw)
        if not lost:
            lost.append("once")
            raise ConnectionLoss("answer lost")  # landed, but we never heard
        return result

    store.session.commit = commit_then_lose_the_answer  # type: ignore[method-assign]
    wanted = replace(read, ids=frozenset({"a", "b"}), reload_times=1)
    written = store.write_instance("Thing", wanted, create=False)  # retried by the store

    assert lost and written == wanted
    assert written.versions == store.read("Thing")[0].versions  # the versions it left
    assert raw(kazoo_client, f"{ROOT}/Thing/0/resources") == b'{"ids":["a","b"]}'
    # Same for a create: the retry finds the node made by its own first attempt.
    lost.clear()
    store.write_instance("Thing", Instance(1, frozenset({"z"}), 3, 0), create=True)
    assert lost and store.read("Thing")[1] == Instance(1, frozenset({"z"}), 3, 0)


def test_a_create_of_an_instance_another_writer_made_meanwhile_is_a_conflict(
    store: ZkStore, kazoo_client: KazooClient
) -> None:
    store.write_instance("Thing", Instance(0, frozenset({"theirs"}), 3, 4), create=True)
    with pytest.raises(Conflict):
        store.write_instance("Thing", Instance(0, frozenset({"ours"}), 3, 0), create=True)
    assert store.read("Thing")[0].ids == {"theirs"}


def test_a_delete_on_stale_versions_deletes_nothing(
    store: ZkStore, kazoo_client: KazooClient
) -> None:
    store.write_instance("Thing", Instance(0, frozenset({"a"}), 3, 1), create=True)
    read = store.read("Thing")[0]
    kazoo_client.set(f"{ROOT}/Thing/0/resources", b'{"ids":["a","theirs"]}')
    with pytest.raises(Conflict):
        store.delete_instance("Thing", 0, versions=read.versions)
    assert store.read("Thing")[0].ids == {"a", "theirs"}
    store.delete_instance("Thing", 0, versions=store.read("Thing")[0].versions)
    assert store.read("Thing") == {}
