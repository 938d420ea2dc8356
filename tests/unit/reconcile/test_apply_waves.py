"""Instance writes that need no other to land first go out together (reconcile/apply.py
`_Wave`), and the order rule (never two owners) holds all the same: on the in-memory fakes,
with a store whose writes take a while and record when each started and ended."""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from reconciler.domain.model import Instance, WriteInstance
from reconciler.domain.outcomes import OutcomeResult
from reconciler.reconcile.pass_ports import MAX_WRITES_IN_FLIGHT
from tests.support.fakes import FakeStore
from tests.support.pass_world import World

WRITE_SECONDS = 0.05


class SlowStore(FakeStore):
    """FakeStore whose writes take WRITE_SECONDS (a ZooKeeper round trip, scaled up) and are
    each recorded as (instance, started, ended); its dict is updated under a lock, and after
    every write no id may be on two instances."""

    def __init__(self) -> None:
        super().__init__()
        self.lock = threading.Lock()
        self.spans: list[tuple[tuple[str, int], float, float]] = []
        self.in_flight = 0
        self.most_in_flight = 0

    def write_instance(
        self, kind: str, instance: Instance, *, create: bool, count_only: bool = False
    ) -> Instance:
        started = time.monotonic()
        with self.lock:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        time.sleep(WRITE_SECONDS)
        try:
            with self.lock:
                written = super().write_instance(
                    kind, instance, create=create, count_only=count_only
                )
                held = Counter(r for i in self.data[kind].values() for r in i.ids)
                assert all(n == 1 for n in held.values()), "an id on two instances"
                return written
        finally:
            with self.lock:
                self.in_flight -= 1
                self.spans.append(((kind, instance.instance_id), started, time.monotonic()))


def _slow_store(world: World) -> SlowStore:
    """The converged world's assignment, moved into a SlowStore."""
    old = world.store
    store = SlowStore()
    store.data, store._versions = old.data, old._versions
    world.store = world.ports.store = store  # type: ignore[assignment]
    return store


@pytest.fixture
def slow(tmp_path: Path) -> tuple[World, SlowStore]:
    w = World(tmp_path)
    w.converge()
    store = _slow_store(w)
    w.ports.store_writes_in_flight = MAX_WRITES_IN_FLIGHT
    return w, store


def test_writes_to_different_instances_that_move_no_ids_go_out_together(
    slow: tuple[World, SlowStore],
) -> None:
    world, store = slow
    gone = {"t0", "t11", "t22", "r0", "r5"}  # rows deleted on several instances of both kinds
    world.rows.tables["Thing"] -= gone
    world.rows.tables["Rule"] -= gone
    result = world.run()
    writes = [o for o in result.outcomes if isinstance(o.op, WriteInstance)]
    assert len(writes) >= 3 and all(o.result is OutcomeResult.OK for o in writes)
    assert store.most_in_flight == len(writes)
    # Outcomes keep the plan's order.
    assert [o.op for o in result.outcomes if isinstance(o.op, WriteInstance)] == [
        op for op in result.plan.ops if isinstance(op, WriteInstance)
    ]


def test_one_write_at_a_time_when_the_store_says_so(slow: tuple[World, SlowStore]) -> None:
    world, store = slow
    world.ports.store_writes_in_flight = 1
    world.rows.tables["Thing"] -= {"t0", "t11", "t22"}
    world.run()
    assert store.most_in_flight == 1 and len(store.spans) >= 2


def test_a_write_taking_ids_starts_only_after_the_write_giving_them_has_landed(
    slow: tuple[World, SlowStore],
) -> None:
    world, store = slow
    world.state.request_rebalance("Thing", {"resourcePerInstance": 5})  # 3 -> 7 instances
    result = world.run()
    assert not result.failed
    span = {key: (start, end) for key, start, end in store.spans}
    writes = [o.op for o in result.outcomes if isinstance(o.op, WriteInstance)]
    checked = 0
    for taker in writes:
        for giver in writes:
            if giver is not taker and giver.gives & taker.takes:
                giver_key = (giver.kind, giver.instance.instance_id)
                taker_key = (taker.kind, taker.instance.instance_id)
                assert span[taker_key][0] >= span[giver_key][1]
                checked += 1
    assert checked  # the rescale moved ids between instances
    assert store.most_in_flight > 1  # the givers (or the takers) went together


def test_a_failed_giver_in_a_wave_still_holds_back_the_writes_taking_its_ids(
    slow: tuple[World, SlowStore],
) -> None:
    world, store = slow
    world.state.request_rebalance("Thing", {"resourcePerInstance": 5})
    store.refuse_instance[("Thing", 0)] = RuntimeError("connection reset")
    result = world.run()
    giver = next(o for o in result.outcomes if o.op.key == "zk:Thing/0")
    assert giver.result is OutcomeResult.FAILED
    gives = giver.op.gives  # type: ignore[union-attr]
    held = [o for o in result.outcomes if isinstance(o.op, WriteInstance) and o.op.takes & gives]
    assert held and all(o.result is OutcomeResult.SKIPPED for o in held)
    assert all(rid in store.data["Thing"][0].ids for rid in gives)
