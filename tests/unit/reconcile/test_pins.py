"""Operators' scale, stop and start (reconciler/domain/pins.py, operations.py) through whole passes
on the fakes of tests/support/fakes.py: the pin wins over the rows' sizing until `start`, is
read back by a daemon that starts (or takes over) later, and is its own confirmation for the
safety valve while an unrelated mass change is still held."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.domain.model import DeleteInstance, DeletePod, PassResult
from reconciler.domain.pins import Pin, PinError, decode_pin
from reconciler.policy.loader import load_policy_and_templates
from reconciler.reconcile.operations import pin_kind
from reconciler.reconcile.pass_ports import Ports
from reconciler.reconcile.pipeline import run_pass
from reconciler.rules.pinning import pin_problem
from reconciler.state.daemon import DaemonState
from tests.support.fakes import (
    FakeClock,
    FakePins,
    FakePodCache,
    FakePods,
    FakeRows,
    FakeStore,
    write_policy,
)

THINGS = 200  # over the safety valve's 50-id floor, so stopping is "drastic"


class World:
    """One fleet (Thing: init 3, 100 per instance; Rule: init 3) whose state can be thrown
    away (a restart of the daemon) while ZooKeeper, the pins and the pods stay."""

    def __init__(self, folder: Path) -> None:
        self.clock = FakeClock()
        self.store = FakeStore()
        self.pins = FakePins()
        self.rows = FakeRows(
            {"Thing": {f"t{i:03}" for i in range(THINGS)}, "Rule": {f"r{i}" for i in range(12)}}
        )
        self.pods = FakePods()
        self.ports = Ports(
            store=self.store,
            rows=self.rows,
            pods=self.pods,
            pod_cache=FakePodCache(self.pods),
            pins=self.pins,
            wall=self.clock.wall,
            mono=self.clock.mono,
        )
        self.policy = write_policy(folder, Thing={"resourcePerInstance": 100})
        self.restart()

    def restart(self) -> None:
        """A new daemon: nothing in memory, the same servers."""
        self.state = DaemonState()
        self.state.policy_accepted(*load_policy_and_templates(self.policy))

    def run(self) -> PassResult:
        return run_pass(self.ports, self.state, trigger="test", full=True)

    def settle(self) -> None:
        """Passes until nothing is left to do (pods start, deleted pods go)."""
        for _ in range(6):
            result = self.run()
            assert not result.failed, result.failed
            self.pods.run_all()
            self.pods.finish_deletes()
            if not result.plan.ops:
                return
        raise AssertionError(f"not settled: {self.run().plan.ops}")

    def thing(self) -> tuple[list[int], set[str], list[str]]:
        """Thing's instances, the ids they hold, its live pods."""
        assignment = self.store.read("Thing")
        held = {rid for inst in assignment.values() for rid in inst.ids}
        pods = sorted(n for n, p in self.pods.pods.get("Thing", {}).items() if not p.terminating)
        return sorted(assignment), held, pods

    def pin(self, instances: int | None) -> None:
        pin_kind(self.state, self.pins, "Thing", instances, "token", self.clock.wall())


@pytest.fixture
def world(tmp_path: Path) -> World:
    w = World(tmp_path)
    w.settle()
    assert w.thing()[0] == [0, 1, 2]  # 200 rows // 100 + 1
    return w


def test_scale_pins_the_instance_count_over_the_row_sizing(world: World) -> None:
    world.pin(5)
    world.settle()
    instances, held, pods = world.thing()
    assert instances == [0, 1, 2, 3, 4]
    assert held == world.rows.tables["Thing"]
    assert pods == [f"iota-dac-{i}" for i in range(5)]
    assert world.store.read("Rule").keys() == {0, 1, 2}  # the other kind is left alone


def test_a_pin_is_written_to_the_store_and_kept_by_a_restarted_daemon(world: World) -> None:
    world.pin(5)
    world.settle()
    assert world.pins.data["Thing"] == Pin(5, "token", world.clock.wall())
    world.restart()
    assert world.run().plan.ops == ()  # not back to 3: the pin was read from the store
    assert world.state.pins.pinned("Thing") == Pin(5, "token", world.clock.wall())


def test_a_pinned_kind_does_not_follow_new_rows_past_its_pin(world: World) -> None:
    world.pin(3)
    world.settle()
    world.rows.tables["Thing"] |= {f"n{i:03}" for i in range(150)}  # 350 rows: 4 would be due
    world.settle()
    instances, held, _ = world.thing()
    assert instances == [0, 1, 2]
    report = world.run().plan.reports["Thing"]
    assert report.unassigned == 50 and report.error == "pinned to 3 instances: 350 rows need 4"
    assert len(held) == 300


def test_stop_deletes_every_instance_and_pod_without_waiting_for_confirm(world: World) -> None:
    world.pin(0)
    result = world.run()
    deletes = [op for op in result.plan.ops if isinstance(op, DeleteInstance | DeletePod)]
    assert len(deletes) == 6  # 3 instances and 3 pods, not held by the safety valve
    world.settle()
    assert world.thing() == ([], set(), [])
    assert world.state.valve("Thing")["engaged"] is False
    assert world.run().plan.reports["Thing"].unassigned == 0  # stopped on purpose: no alert


def test_start_returns_a_stopped_kind_to_its_policy(world: World) -> None:
    world.pin(0)
    world.settle()
    world.pin(None)
    world.settle()
    instances, held, pods = world.thing()
    assert instances == [0, 1, 2] and held == world.rows.tables["Thing"] and len(pods) == 3
    assert "Thing" not in world.pins.data


def test_start_returns_a_scaled_kind_to_its_policy_sizing(world: World) -> None:
    world.pin(6)
    world.settle()
    world.pin(None)
    world.settle()
    assert world.thing()[0] == [0, 1, 2]  # re-sized, not held at 6


def test_after_a_stop_an_unrelated_mass_change_is_still_held(world: World) -> None:
    world.pin(0)
    world.settle()
    world.pin(None)
    world.settle()
    world.rows.tables["Thing"] = set()  # an emptied table, nobody asked for that
    world.run()
    assert world.state.valve("Thing")["engaged"] is True
    assert len(world.thing()[1]) == THINGS  # the ids stay where they are


def test_a_new_leader_carries_out_a_stop_it_did_not_see_asked(world: World) -> None:
    world.pins.data["Thing"] = Pin(0, "token", 1.0)  # written by the leader that then died
    world.restart()
    world.settle()
    assert world.thing() == ([], set(), [])


def test_unknown_pins_mean_no_plan_for_any_kind(world: World) -> None:
    world.pins.data["Thing"] = Pin(0, "token", 1.0)
    world.pins.down = True
    world.restart()
    result = world.run()
    assert result.plan.ops == ()
    assert world.state.sources.degraded("Thing").keys() == {"zookeeper"}
    world.pins.down = False
    world.settle()
    assert world.thing() == ([], set(), [])


def test_a_failed_pin_write_changes_nothing(world: World) -> None:
    world.pins.down = True
    with pytest.raises(Exception, match="down"):
        world.pin(0)
    assert world.state.pins.pinned("Thing") is None
    world.pins.down = False
    assert world.run().plan.ops == ()


def test_a_pin_above_max_instances_or_below_the_rows_need_is_refused(world: World) -> None:
    policy = world.state.policies()["Thing"]
    assert pin_problem(policy, 200, 101) == "101 is above maxInstances 100"
    assert pin_problem(policy, 200, 1) == (
        "1 instances of resourcePerInstance 100 cannot hold 200 rows: at least 2"
    )
    assert pin_problem(policy, 200, 2) is None
    assert pin_problem(policy, 200, 0) is None  # stop


@pytest.mark.parametrize(
    "raw", [b"", b"[]", b'{"instances": -1}', b'{"instances": true}', b'{"instances": "3"}']
)
def test_a_pin_node_that_holds_no_pin_is_refused(raw: bytes) -> None:
    with pytest.raises(PinError):
        decode_pin(raw)


def test_a_pin_round_trips_through_its_node_data() -> None:
    pin = Pin(4, "alice", 1764700000.5)
    assert decode_pin(pin.encode()) == pin


def test_a_pin_set_while_a_pass_reads_the_pins_is_not_undone_by_that_read(world: World) -> None:
    world.pins.during_read = lambda: (setattr(world.pins, "during_read", None), world.pin(0))
    world.run()  # read the pins before the stop was written, planned without it
    assert world.state.pins.pinned("Thing") == Pin(0, "token", world.clock.wall())
    world.settle()
    assert world.thing() == ([], set(), [])
