"""The transaction of one instance's write, decided without a server (instance_write.py)."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

from reconciler.adapters.zookeeper.instance_write import InstanceWrite, Op
from reconciler.domain.model import Instance, NodeVersions

BASE = "/iota/orchestration/Thing/0"
NODE = b'{"used":1,"count":3}'
RELOAD = b'{"times":2}'
RESOURCES = b'{"ids":["a"]}'
INSTANCE = Instance(0, frozenset({"a"}), 3, 2)


def write(
    versions: NodeVersions | None = None, *, create: bool = False, count_only: bool = False
) -> InstanceWrite:
    return InstanceWrite.of(
        BASE, replace(INSTANCE, versions=versions), create=create, count_only=count_only
    )


def test_a_new_instance_creates_every_node_so_none_may_exist() -> None:
    new = write(create=True)
    assert new.ops(None) == [
        Op("create", BASE, NODE),
        Op("create", f"{BASE}/tmp"),
        Op("create", f"{BASE}/_reload", RELOAD),
        Op("create", f"{BASE}/resources", RESOURCES),
    ]
    # Found meanwhile: the data nodes are still created, so the transaction fails rather
    # than overwrite another writer's instance; an existing `tmp` is the workers'.
    assert new.ops({"tmp", "_reload", "resources"}) == [
        Op("create", BASE, NODE),
        Op("create", f"{BASE}/_reload", RELOAD),
        Op("create", f"{BASE}/resources", RESOURCES),
    ]


def test_on_known_versions_tmp_is_checked_and_the_data_set_on_the_versions_read() -> None:
    known = write(NodeVersions(4, 6, 2))
    assert known.all_known
    assert known.ops(None) == [
        Op("check", f"{BASE}/tmp"),
        Op("set", BASE, NODE, 4),
        Op("set", f"{BASE}/_reload", RELOAD, 2),
        Op("set", f"{BASE}/resources", RESOURCES, 6),
    ]


def test_a_count_change_checks_the_ids_instead_of_sending_them_again() -> None:
    ops = write(NodeVersions(4, 6, 2), count_only=True).ops(None)
    assert ops == [
        Op("check", f"{BASE}/tmp"),
        Op("set", BASE, NODE, 4),
        Op("check", f"{BASE}/_reload", version=2),
        Op("check", f"{BASE}/resources", version=6),
    ]


def test_a_node_missing_when_read_is_created_and_tmp_left_to_the_workers() -> None:
    repair = write(NodeVersions(4, None, 2, tmp=True))
    assert not repair.all_known
    assert repair.ops({"tmp", "_reload"}) == [
        Op("set", BASE, NODE, 4),
        Op("set", f"{BASE}/_reload", RELOAD, 2),
        Op("create", f"{BASE}/resources", RESOURCES),
    ]


def test_without_versions_or_create_the_write_is_unconditional() -> None:
    blind = write()
    assert not blind.checked
    assert blind.ops({"tmp", "resources"}) == [
        Op("set", BASE, NODE),
        Op("create", f"{BASE}/_reload", RELOAD),
        Op("set", f"{BASE}/resources", RESOURCES),
    ]


def test_the_versions_left_come_from_the_answers_and_checked_nodes_keep_theirs() -> None:
    counted = write(NodeVersions(4, 6, 2), count_only=True)
    ops = counted.ops(None)
    results = [True, SimpleNamespace(version=5), True, True]
    assert counted.versions_after(ops, results) == NodeVersions(5, 6, 2)
    created = write(create=True)
    ops = created.ops(None)
    assert created.versions_after(ops, [op.path for op in ops]) == NodeVersions(0, 0, 0)


def test_holds_only_exactly_what_it_writes() -> None:
    new = write(create=True)
    got = {
        BASE: (NODE, 1),
        f"{BASE}/tmp": (b"", 0),
        f"{BASE}/_reload": (RELOAD, 3),
        f"{BASE}/resources": (RESOURCES, 2),
    }
    assert new.paths == list(got)
    assert new.holds(got) == NodeVersions(1, 2, 3)
    assert new.holds({**got, f"{BASE}/resources": (b'{"ids":["b"]}', 2)}) is None
    assert new.holds({**got, f"{BASE}/tmp": (None, None)}) is None
