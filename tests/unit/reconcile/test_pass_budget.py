"""The pass budget (reconciler/reconcile/budget.py) on in-memory fakes: a pass whose calls are slow
stops
starting operations at its deadline, counts and logs the overrun once, and leaves the rest to
the next pass, without ever breaking the write order (givers before receivers)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from reconciler.domain.model import Moment, PassResult, WriteInstance
from reconciler.domain.outcomes import OutcomeResult, SkipReason
from reconciler.policy.loader import load_policy_and_templates
from reconciler.policy.schema import KindPolicy
from reconciler.reconcile.budget import Deadline
from reconciler.reconcile.pass_ports import Ports
from reconciler.reconcile.pipeline import run_pass
from reconciler.runtime.loop import Daemon, Wake, WakeReason
from reconciler.state.daemon import DaemonState
from reconciler.telemetry import metrics
from tests.support.fakes import FakeClock, FakePodCache, FakePods, FakeRows, FakeStore, write_policy
from tests.support.polling import eventually

BUDGET = 10.0
CALL = 4.0  # seconds each ZooKeeper write takes in these tests (a slow server)


def overruns() -> float:
    return metrics.REGISTRY.get_sample_value("reconciler_pass_overruns_total") or 0.0


class World:
    """Thing (30 rows) and Rule (12 rows) on the fakes, time on a FakeClock."""

    def __init__(self, folder: Path, **kinds: dict[str, object]) -> None:
        self.folder = folder
        self.clock = FakeClock()
        self.store = FakeStore()
        self.rows = FakeRows(
            {"Thing": {f"t{i}" for i in range(30)}, "Rule": {f"r{i}" for i in range(12)}}
        )
        self.pods = FakePods()
        self.ports = Ports(
            store=self.store,
            rows=self.rows,
            pods=self.pods,
            pod_cache=FakePodCache(self.pods),
            wall=self.clock.wall,
            mono=self.clock.mono,
        )
        self.state = DaemonState()
        self.edit(**kinds)

    def edit(self, **kinds: dict[str, object]) -> None:
        self.state.policy_accepted(*load_policy_and_templates(write_policy(self.folder, **kinds)))

    def run(self, budget: float | None = None) -> PassResult:
        deadline = Deadline.start(budget, self.clock.mono) if budget is not None else None
        return run_pass(self.ports, self.state, trigger="test", deadline=deadline)

    def converge(self) -> None:
        for _ in range(10):
            if not self.run().plan.ops:
                return
            self.pods.run_all()
        raise AssertionError("did not converge in 10 passes")

    def owners(self, kind: str) -> dict[str, list[int]]:
        out: dict[str, list[int]] = {}
        for i, inst in self.store.data.get(kind, {}).items():
            for rid in inst.ids:
                out.setdefault(rid, []).append(i)
        return out


def slow_writes(world: World, seconds: float) -> None:
    """Every ZooKeeper write takes `seconds` (on the fake clock)."""
    world.store.after_write = lambda _store: world.clock.advance(seconds)


def test_a_wedged_pass_ends_within_its_budget_counts_the_overrun_and_leaves_the_rest(
    tmp_path: Path,
) -> None:
    world = World(tmp_path)
    slow_writes(world, CALL)
    before = overruns()
    with capture_logs() as logs:
        result = world.run(BUDGET)
    # 6 instance writes and 6 pod creates planned; 3 writes fit before the deadline
    # (0, 4, 8 s in: each starts before 10 s), the call in flight ends at 12 s.
    assert len(result.plan.ops) == 12
    assert result.over_budget
    assert result.seconds <= BUDGET + CALL
    assert world.store.writes == 3
    assert len(result.left) == 9 and all(o.skip is SkipReason.OVER_BUDGET for o in result.left)
    assert overruns() == before + 1
    said = [e for e in logs if e["event"] == "pass over budget"]
    assert len(said) == 1, said
    assert said[0]["budget_s"] == BUDGET and said[0]["ops_left"] == 9
    assert BUDGET <= said[0]["elapsed_s"] <= BUDGET + CALL
    assert said[0]["log_level"] == "warning"

    # The next pass picks up where the budget stopped: the rest, without redoing anything.
    second = world.run(BUDGET)
    applied = [o.op for o in second.outcomes if o.result is OutcomeResult.OK]
    assert not any(
        isinstance(op, WriteInstance)
        and op.instance.instance_id in (0, 1, 2)
        and op.kind == "Thing"
        for op in applied
    )
    assert any(op.kind == "Rule" for op in applied)
    while world.run(BUDGET).left:  # 4 s a write: 3 writes a pass
        pass
    world.pods.run_all()
    assert world.run().plan.ops == ()  # nothing was lost on the way
    assert set(world.owners("Thing")) == world.rows.tables["Thing"]
    assert set(world.owners("Rule")) == world.rows.tables["Rule"]


def test_a_pass_within_its_budget_counts_no_overrun(tmp_path: Path) -> None:
    world = World(tmp_path)
    slow_writes(world, 0.5)
    before = overruns()
    with capture_logs() as logs:
        result = world.run(BUDGET)
    assert not result.over_budget and result.left == []
    assert overruns() == before
    assert not [e for e in logs if e["event"] == "pass over budget"]


@pytest.mark.parametrize("cut_after", range(1, 9))
def test_the_budget_never_applies_a_receiver_whose_giver_it_left(
    tmp_path: Path, cut_after: int
) -> None:
    """A rescale (Thing: 3 instances of 10 ids to 8 instances of 4) cut by the deadline
    after its k-th write: never an id on two instances, after any write; then it ends where an
    uncut rescale ends."""
    world = World(tmp_path)
    world.converge()
    written = [0]

    def after(store: FakeStore) -> None:
        for rid, on in world.owners("Thing").items():
            assert len(on) == 1, f"{rid} on instances {on} after write {written[0] + 1}"
        written[0] += 1
        if written[0] == cut_after:
            world.clock.advance(BUDGET + 1)  # this write took the whole budget

    world.store.after_write = after
    world.edit(Thing={"resourcePerInstance": 4, "maxInstances": 20})
    first = world.run(BUDGET)
    assert first.over_budget and written[0] == cut_after
    assert first.left, "the cut left nothing: choose a later rescale"
    world.converge()

    (tmp_path / "twin").mkdir()
    twin = World(tmp_path / "twin")
    twin.converge()
    twin.edit(Thing={"resourcePerInstance": 4, "maxInstances": 20})
    twin.converge()
    assert layout(world.store) == layout(twin.store)


def layout(store: FakeStore) -> dict[int, tuple[frozenset[str], int]]:
    return {i: (x.ids, x.count) for i, x in store.data["Thing"].items()}


class CountingAutoscaler:
    """Stands in for reconciler.reconcile.autoscale.Autoscaler: counts its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def update(
        self,
        kind: str,
        policy: KindPolicy,
        rows: Any,
        assignment: Any,
        pods: Any,
        at: Moment,
        targets: dict[str, int],
    ) -> None:
        self.calls += 1


def test_a_pass_past_its_budget_after_observing_skips_the_autoscaler_and_applies_nothing(
    tmp_path: Path,
) -> None:
    world = World(tmp_path)
    scaler = CountingAutoscaler()
    world.ports.autoscaler = scaler  # type: ignore[assignment]
    # Each table's read takes half the budget: Rule's ends it, before its assignment and pods.
    world.rows.during_read = lambda: world.clock.advance(BUDGET / 2)
    before = overruns()
    result = world.run(BUDGET)
    assert scaler.calls == 0
    assert result.plan.ops and len(result.left) == len(result.plan.ops)
    assert world.store.writes == 0 and world.pods.creates == 0
    assert overruns() == before + 1
    world.rows.during_read = None
    world.run(BUDGET)
    assert scaler.calls == 2  # the next pass asks it again (Thing and Rule)


def test_a_rebalance_cut_by_the_budget_stays_requested_until_it_is_done(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.converge()
    world.state.request_rebalance("Thing", {"resourcePerInstance": 4, "maxInstances": 20})
    slow_writes(world, BUDGET + 1)
    world.run(BUDGET)
    assert world.state.intents(world.state.policies())["Thing"].rebalance
    world.store.after_write = None
    world.run(BUDGET)
    assert not world.state.intents(world.state.policies())["Thing"].rebalance


# ------------------------------------------------------------------ the loop


@pytest.fixture
def slow_daemon(tmp_path: Path) -> Iterator[tuple[Daemon, FakeStore]]:
    """A daemon on the fakes whose ZooKeeper writes take 0.1 s each, with a 0.25 s budget
    and an hour between ticks: only its own follow-up passes can finish the first plan."""
    pods = FakePods()
    store = FakeStore(after_write=lambda _s: time.sleep(0.1))
    rows = FakeRows({"Thing": {f"t{i}" for i in range(30)}, "Rule": {f"r{i}" for i in range(9)}})
    ports = Ports(store=store, rows=rows, pods=pods, pod_cache=FakePodCache(pods))
    daemon = Daemon(write_policy(tmp_path, tick=3600), ports, pass_budget=0.25)
    thread = threading.Thread(target=daemon.run, name="reconcile-loop", daemon=True)
    thread.start()
    try:
        yield daemon, store
    finally:
        daemon.stop()
        thread.join(10)


def test_the_loop_goes_on_at_once_with_what_the_budget_left(
    slow_daemon: tuple[Daemon, FakeStore],
) -> None:
    daemon, store = slow_daemon
    before = overruns()
    eventually(lambda: len(store.data.get("Thing", {})) == 3, timeout=10, what="Thing written")
    eventually(lambda: len(store.data.get("Rule", {})) == 3, timeout=10, what="Rule written")
    eventually(
        lambda: daemon.last_pass is not None and not daemon.last_pass.left,
        timeout=10,
        what="a pass with nothing left",
    )
    assert daemon.passes >= 3  # 6 writes of 0.1 s under a 0.25 s budget: several passes
    assert overruns() >= before + 2
    daemon.wake(Wake(WakeReason.TICK))  # still healthy: the budget is no fault
    eventually(lambda: daemon.liveness.problem() is None, timeout=5)
