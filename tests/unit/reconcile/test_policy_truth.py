"""The policy is the whole truth (issue 27): whatever grew a kind past the size its rows give
(the autoscaler, a pin, a larger maxInstances), once the policy no longer asks for it the kind
returns to the size the policy now gives, through whole passes on the fakes of
tests/support/fakes.py. The autoscaler is the real one; its pod usage and nodes come from a
fake source (`FakeUsage`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from reconciler.domain.model import NodeCapacity, PassResult, PodUsage
from reconciler.domain.podspec import PodTemplate
from reconciler.policy.loader import load_policy_and_templates
from reconciler.reconcile.autoscale import Autoscaler
from reconciler.reconcile.operations import pin_kind
from reconciler.reconcile.pass_ports import Ports
from reconciler.reconcile.pipeline import run_pass
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

THINGS = 300  # at 100 per instance: 4 instances by the rows; initInstances 3
CPU_M = 250.0  # the iota-dac template's CPU request
AUTOSCALE = {"cpuTargetPercent": 50, "periodSeconds": 1, "scaleDownWindowSeconds": 0}


@dataclass
class FakeUsage:
    """The autoscaler's source, a fake: every pod of the kind at `cpu_percent` of its request,
    one roomy node."""

    templates: dict[str, PodTemplate]
    clock: FakeClock
    cpu_percent: float = 100.0
    reads: list[str] = field(default_factory=list)

    def pod_usage(self, kind: str) -> dict[str, PodUsage]:
        used = CPU_M * self.cpu_percent / 100
        return {f"iota-dac-{i}": PodUsage(used, 2**20, self.clock.wall(), 30) for i in range(100)}

    def node_capacity(self) -> list[NodeCapacity]:
        return [NodeCapacity("roomy", 1_000_000, 2**50, 0, 0, True)]


class World:
    def __init__(self, folder: Path, **thing: object) -> None:
        self.folder = folder
        self.clock = FakeClock()
        self.store = FakeStore()
        self.pins = FakePins()
        self.rows = FakeRows({"Thing": {f"t{i:03}" for i in range(THINGS)}, "Rule": {"r0"}})
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
        self.state = DaemonState()
        self.edit(**thing)
        self.usage = FakeUsage(self.state.policy.templates, self.clock)
        self.ports.autoscaler = Autoscaler(self.usage)

    def edit(self, **thing: object) -> None:
        """An edit of policy.yaml, accepted as the policy watch accepts it."""
        base = {"resourcePerInstance": 100, "maxInstances": 20, **thing}
        path = write_policy(self.folder, Thing={k: v for k, v in base.items() if v is not None})
        self.state.policy_accepted(*load_policy_and_templates(path))

    def run(self, full: bool = True) -> PassResult:
        self.clock.advance(1.5)  # past the autoscaler's period
        result = run_pass(self.ports, self.state, trigger="test", full=full)
        assert not result.failed, result.failed
        self.pods.run_all()
        self.pods.finish_deletes()
        return result

    def instances(self) -> int:
        assignment = self.store.read("Thing")
        held = [rid for inst in assignment.values() for rid in inst.ids]
        assert sorted(held) == sorted(self.rows.tables["Thing"])  # each id exactly once
        return len(assignment)

    def grow_by_autoscale(self, first: int = 4, to: int = 20) -> None:
        """Pods at twice the target: `first` (the rows' size) doubling up to `to`
        (maxInstances) over passes."""
        self.run()
        assert self.instances() == first
        for _ in range(4):
            self.run()
        assert self.instances() == to


def test_removing_autoscale_returns_the_kind_to_its_row_size_on_the_next_pass(
    tmp_path: Path,
) -> None:
    world = World(tmp_path, autoscale=AUTOSCALE)
    world.grow_by_autoscale()
    world.edit(autoscale=None)
    world.run()
    # 16 pods to delete: the safety valve holds the plan for its confirm passes, and the
    # re-size stays due meanwhile (it is not forgotten once the first pass is recorded).
    assert world.state.valves.summary("Thing")["engaged"]
    for _ in range(3):
        world.run()
    assert world.instances() == 4  # 300 rows // 100 + 1


def test_removing_autoscale_is_carried_out_by_an_event_pass_too(tmp_path: Path) -> None:
    # An event pass does not ask the autoscaler: the target it remembers must not count.
    world = World(tmp_path, autoscale=AUTOSCALE, maxInstances=12)
    world.grow_by_autoscale(to=12)
    world.edit(autoscale=None, maxInstances=12)  # 8 pods to delete: the valve lets it by
    world.run(full=False)
    assert world.instances() == 4
    world.run()
    assert world.instances() == 4  # and stays there on the next full pass


def test_changing_autoscale_targets_lets_the_new_target_decide(tmp_path: Path) -> None:
    world = World(tmp_path, autoscale=AUTOSCALE)
    world.grow_by_autoscale()
    # The same usage is a quarter of a 200% target: the kind goes back down (to its rows).
    world.edit(autoscale={**AUTOSCALE, "cpuTargetPercent": 400})
    world.run()
    world.run()
    assert world.instances() == 4


def test_lowering_max_instances_below_the_count_returns_the_kind_under_it(tmp_path: Path) -> None:
    world = World(tmp_path, autoscale=AUTOSCALE)
    world.grow_by_autoscale()
    world.edit(autoscale=AUTOSCALE, maxInstances=12)
    world.run()
    assert world.instances() == 12
    world.run()
    assert world.instances() == 12  # the autoscaler asks no more than the new bound


def test_lowering_max_instances_under_a_layout_grown_without_autoscale(tmp_path: Path) -> None:
    world = World(tmp_path, initInstances=12)
    world.run()
    assert world.instances() == 12
    world.edit(initInstances=3, maxInstances=8)
    world.run()
    assert world.instances() == 4


def test_removing_a_pin_returns_the_kind_to_its_row_size(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.run()
    assert world.instances() == 4
    pin_kind(world.state, world.pins, "Thing", 9, "token", world.clock.wall())
    world.run()
    assert world.instances() == 9
    pin_kind(world.state, world.pins, "Thing", None, "token", world.clock.wall())
    world.run()
    assert world.instances() == 4


def test_the_autoscalers_scale_down_keeps_room_for_the_next_rows(tmp_path: Path) -> None:
    # 300 rows at 5000 per instance: initInstances (3) is the rows' size, and
    # `rows // instances + 1` would leave 3 free slots. Grown to 20 by load, the load gone:
    # back to 3 instances with room for the next rows (no instance opened again for them).
    world = World(tmp_path, autoscale=AUTOSCALE, resourcePerInstance=5000)
    world.grow_by_autoscale(first=3)
    world.usage.cpu_percent = 10
    for _ in range(6):
        world.run()
    assert world.instances() == 3
    assert {inst.count for inst in world.store.read("Thing").values()} == {111}  # 330 // 3 + 1
    world.rows.tables["Thing"] |= {f"n{i}" for i in range(25)}
    world.run()
    assert world.instances() == 3


def test_the_demos_sequence_opens_no_instance_again(tmp_path: Path) -> None:
    # 1,205 rows at initInstances 10, edited to 4, then 5 rows and then 20 more: the 4
    # instances take them all; the pods of instances 4..9 are not created again.
    world = World(tmp_path, initInstances=10, resourcePerInstance=5000)
    world.rows.tables["Thing"] = {f"t{i:04}" for i in range(1205)}
    world.run()
    assert world.instances() == 10
    world.edit(initInstances=4, resourcePerInstance=5000)
    world.run()
    world.run()
    assert world.instances() == 4
    creates = world.pods.creates
    for batch in (5, 20):
        world.rows.tables["Thing"] |= {f"n{batch}-{i}" for i in range(batch)}
        world.run()
        assert world.instances() == 4
    assert world.pods.creates == creates
