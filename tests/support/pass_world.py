"""One pass's world on the fakes of tests/support/fakes.py: the ports, the state and a policy,
for the tests of the pipeline and the apply stage."""

from __future__ import annotations

from pathlib import Path

from reconciler.policy.loader import load_policy_and_templates
from reconciler.reconcile.pass_ports import Ports
from reconciler.reconcile.pipeline import run_pass
from reconciler.state.daemon import DaemonState
from tests.support.fakes import (
    FakeClock,
    FakeEvents,
    FakeHeartbeats,
    FakePodCache,
    FakePods,
    FakeRows,
    FakeStore,
    write_policy,
)


class World:
    def __init__(self, folder: Path, **kinds: dict[str, object]) -> None:
        self.clock = FakeClock()
        self.store = FakeStore()
        self.rows = FakeRows(
            {"Thing": {f"t{i}" for i in range(30)}, "Rule": {f"r{i}" for i in range(12)}}
        )
        self.pods = FakePods()
        self.events = FakeEvents()
        self.ports = Ports(
            store=self.store,
            rows=self.rows,
            pods=self.pods,
            pod_cache=FakePodCache(self.pods),
            heartbeats=FakeHeartbeats(),
            events=self.events,
            wall=self.clock.wall,
            mono=self.clock.mono,
        )
        self.state = DaemonState()
        self.state.policy_accepted(*load_policy_and_templates(write_policy(folder, **kinds)))

    def run(self, full: bool = True, **kw: object):  # type: ignore[no-untyped-def]
        return run_pass(self.ports, self.state, trigger="test", full=full, **kw)  # type: ignore[arg-type]

    def converge(self) -> None:
        result = self.run()
        assert not result.failed
        self.pods.run_all()
        assert self.run().plan.ops == ()
