"""A kind's gauges follow the policy: `reconciler_kind_degraded` reads 0 once the kind can read
its sources again, and every series of a kind taken out of the policy goes (a series frozen at
1 would keep ReconcilerKindDegraded paging for a kind that no longer exists)."""

from __future__ import annotations

from pathlib import Path

import yaml

from reconciler.policy.loader import load_policy_and_templates
from reconciler.reconcile.pass_ports import Ports
from reconciler.reconcile.pipeline import run_pass
from reconciler.state.daemon import DaemonState
from reconciler.telemetry import metrics
from tests.support.fakes import FakeClock, FakePodCache, FakePods, FakeRows, FakeStore, write_policy

GHOST_GAUGES = (
    "reconciler_kind_degraded",
    "reconciler_safety_valve_engaged",
    "reconciler_instances",
    "reconciler_unassigned_ids",
    "reconciler_over_capacity",
)


def value(name: str, kind: str) -> float | None:
    return metrics.REGISTRY.get_sample_value(name, {"resource": kind})


class World:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        clock = FakeClock()
        self.rows = FakeRows({"Thing": {f"t{i}" for i in range(30)}, "Rule": {"r1", "r2"}})
        pods = FakePods()
        self.ports = Ports(
            store=FakeStore(),
            rows=self.rows,
            pods=pods,
            pod_cache=FakePodCache(pods),
            wall=clock.wall,
            mono=clock.mono,
        )
        self.state = DaemonState()

    def policy(self, *, ghost: bool) -> None:
        path = write_policy(self.folder)
        doc = yaml.safe_load(path.read_text())
        if ghost:  # a kind whose table does not exist (yet)
            doc["kinds"]["Ghost"] = {**doc["kinds"]["Thing"], "table": "GhostTable"}
            doc["kinds"]["Ghost"]["instanceName"] = "iota-ghost"
        path.write_text(yaml.safe_dump(doc))
        self.state.policy_accepted(*load_policy_and_templates(path))

    def run(self) -> None:
        run_pass(self.ports, self.state, trigger="test")


def test_a_kind_that_can_read_its_table_again_reads_not_degraded(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.policy(ghost=True)
    world.run()
    assert value("reconciler_kind_degraded", "Ghost") == 1
    assert value("reconciler_kind_degraded", "Thing") == 0
    world.rows.tables["GhostTable"] = {"g1", "g2"}
    world.run()
    assert value("reconciler_kind_degraded", "Ghost") == 0


def test_a_kind_taken_out_of_the_policy_leaves_no_series_behind(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.policy(ghost=True)
    world.run()
    assert value("reconciler_kind_degraded", "Ghost") == 1
    assert value("reconciler_safety_valve_engaged", "Ghost") is not None
    world.policy(ghost=False)
    world.run()
    for name in GHOST_GAUGES:
        assert value(name, "Ghost") is None, name
    # the kinds still in the policy keep theirs
    assert value("reconciler_kind_degraded", "Thing") == 0
    assert value("reconciler_instances", "Thing") == 3
