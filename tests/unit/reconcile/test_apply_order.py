"""The apply stage keeps "never two owners" (issue 12) when writes fail, and every ZooKeeper
write is a compare-and-set: on the in-memory fakes (tests/support/fakes.py), whose store
checks versions like ZooKeeper and here checks after EVERY write that no id is on two
instances."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest

from reconciler.domain.errors import Conflict
from reconciler.domain.model import CreatePod, DeleteInstance, WriteInstance
from reconciler.domain.outcomes import System
from tests.support.fakes import FakeStore
from tests.support.pass_world import World


def no_id_on_two_instances(store: FakeStore) -> None:
    for kind, assignment in store.data.items():
        twice = [
            rid
            for rid, n in Counter(r for i in assignment.values() for r in i.ids).items()
            if n > 1
        ]
        assert not twice, f"{kind}: {twice[:5]} on two instances"


@pytest.fixture
def world(tmp_path: Path) -> World:
    w = World(tmp_path)
    w.store.after_write = no_id_on_two_instances
    w.converge()  # Thing: 30 rows on 3 instances of 11
    return w


def rescale(world: World, per: int) -> None:
    """An operator's orchestrate with a new resourcePerInstance (REST), applied next pass."""
    world.state.request_rebalance("Thing", {"resourcePerInstance": per})


def thing_ids(world: World) -> list[str]:
    return sorted(rid for inst in world.store.read("Thing").values() for rid in inst.ids)


def test_a_failed_giver_write_holds_back_the_writes_taking_its_ids_and_their_pods(
    world: World,
) -> None:
    rescale(world, 5)  # 3 -> 7 instances: 0, 1 and 2 give ids to the new 3..6
    world.store.refuse_instance[("Thing", 0)] = RuntimeError("connection reset")
    result = world.run()

    by_result = {o.op: o for o in result.outcomes}
    giver = next(o for o in result.outcomes if o.op.key == "zk:Thing/0")
    assert giver.result == "failed"
    gives = giver.op.gives  # type: ignore[union-attr]
    writes = [o for o in result.outcomes if isinstance(o.op, WriteInstance)]
    held = [o for o in writes if o.op.takes & gives]  # type: ignore[union-attr]
    assert held and all(
        o.result == "skipped" and (o.error or "").startswith("giver write failed") for o in held
    )
    # Writes that take nothing of instance 0's went ahead.
    assert all(o.result == "ok" for o in writes if o.op.key != "zk:Thing/0" and o not in held)
    # No pod for an instance whose shard was not written.
    for o in held:
        create = CreatePod("Thing", o.op.instance.instance_id)  # type: ignore[union-attr]
        if create in by_result:
            assert by_result[create].result == "skipped"
    assert all(rid in world.store.read("Thing")[0].ids for rid in gives)  # still its own

    del world.store.refuse_instance[("Thing", 0)]
    world.clock.advance(5)  # past the write's backoff
    again = world.run()
    assert not again.failed
    assert thing_ids(world) == sorted(world.rows.tables["Thing"])  # each once: checked per write
    assert len(world.store.read("Thing")) == 7


def test_a_scale_down_empties_instances_before_their_ids_move_and_deletes_them_last(
    world: World,
) -> None:
    rescale(world, 5)
    world.run()
    world.clock.advance(60)
    rescale(world, 5000)  # 7 -> 3 instances
    result = world.run()
    store_ops = [o.op for o in result.outcomes if o.op.system is System.ZOOKEEPER]
    deletes = [op for op in store_ops if isinstance(op, DeleteInstance)]
    assert sorted(op.instance_id for op in deletes) == [3, 4, 5, 6]
    last_write = max(k for k, op in enumerate(store_ops) if isinstance(op, WriteInstance))
    for op in deletes:  # emptied (its worker told by _reload) first, deleted after every write
        emptying = [w for w in store_ops if w.key == op.key and isinstance(w, WriteInstance)]
        assert [w.instance.ids for w in emptying] == [frozenset()]  # type: ignore[union-attr]
        assert store_ops.index(op) > last_write
    assert sorted(world.store.read("Thing")) == [0, 1, 2]
    assert thing_ids(world) == sorted(world.rows.tables["Thing"])


def test_an_instance_whose_emptying_write_fails_is_not_deleted_and_keeps_its_ids(
    world: World,
) -> None:
    rescale(world, 5)
    world.run()
    world.clock.advance(60)
    before = world.store.read("Thing")[6].ids
    world.store.refuse_instance[("Thing", 6)] = RuntimeError("connection reset")
    rescale(world, 5000)
    result = world.run()
    delete = next(
        o for o in result.outcomes if isinstance(o.op, DeleteInstance) and o.op.instance_id == 6
    )
    assert delete.result == "skipped"
    assert world.store.read("Thing")[6].ids == before  # nobody else took them meanwhile

    del world.store.refuse_instance[("Thing", 6)]
    world.clock.advance(5)
    assert not world.run().failed
    assert sorted(world.store.read("Thing")) == [0, 1, 2]
    assert thing_ids(world) == sorted(world.rows.tables["Thing"])


def test_a_write_on_a_version_another_writer_moved_is_a_conflict_and_overwrites_nothing(
    world: World,
) -> None:
    # Another writer bumps every instance's _reload behind the daemon's back.
    for inst in world.store.read("Thing").values():
        world.store.write_instance(
            "Thing", replace(inst, reload_times=inst.reload_times + 10), create=False
        )
    theirs = world.store.read("Thing")

    # A row event: the event pass plans on the assignment the last pass left (stale now).
    world.rows.tables["Thing"].add("t-new")
    world.state.rows.patch("Thing", ["t-new"], [])
    result = world.run(full=False)
    [outcome] = [o for o in result.outcomes if isinstance(o.op, WriteInstance)]
    assert outcome.result == "failed" and outcome.retry
    assert (outcome.error or "").startswith(Conflict.__name__)
    assert world.store.read("Thing") == theirs  # nothing overwritten

    world.clock.advance(5)  # past the backoff: the next pass reads ZooKeeper again
    again = world.run(full=False)
    assert not again.failed
    now = world.store.read("Thing")
    assert "t-new" in set().union(*(i.ids for i in now.values()))
    written = next(i for i in now.values() if "t-new" in i.ids)
    assert written.reload_times == theirs[written.instance_id].reload_times + 1


def test_event_passes_write_on_the_versions_their_own_last_write_left(world: World) -> None:
    owner = next(i for i in world.store.read("Thing").values() if "t0" in i.ids)
    other = sorted(owner.ids - {"t0"})[0]
    for gone in ("t0", other):  # two event passes, each writing the same instance
        world.rows.tables["Thing"].discard(gone)
        world.state.rows.patch("Thing", [], [gone])
        result = world.run(full=False)
        assert [o.result for o in result.outcomes if o.op.system is System.ZOOKEEPER] == ["ok"]
    assert world.store.read("Thing")[owner.instance_id].ids == owner.ids - {"t0", other}
