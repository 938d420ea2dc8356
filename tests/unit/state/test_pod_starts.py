"""Pods' starts across a wall-clock step (reconciler/state/pod_starts.py): after the daemon's clock
steps back, a pod's start (the apiserver's clock) looks like the future, after a step forward
like the past; moved by the step (the wall clock against the monotonic one since the pod was
first seen), the heartbeat grace and silence run as before the step."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from reconciler.domain.model import Pod, Reason, RecreatePod
from reconciler.policy.loader import load_policy_and_templates
from reconciler.reconcile.pass_ports import Ports
from reconciler.reconcile.pipeline import run_pass
from reconciler.state.daemon import DaemonState
from reconciler.state.pod_starts import PodStarts
from tests.support.fakes import (
    FakeHeartbeats,
    FakePodCache,
    FakePods,
    FakeRows,
    FakeStore,
    write_policy,
)

T0 = 1_700_000_000.0
STEP = 3600.0


def pod(uid: str, started: float | None) -> Pod:
    return Pod(f"p-{uid}", 0, "Running", started_at=started, uid=uid)


def test_without_a_step_the_apiservers_start_stands() -> None:
    starts = PodStarts()
    pods = {"a": pod("a", T0 - 500), "b": pod("b", None)}
    assert starts.started("Thing", pods, T0, 10.0) == pods
    assert starts.started("Thing", pods, T0 + 60, 70.0) == pods


def test_after_a_step_back_a_pod_is_as_old_as_before_the_step() -> None:
    starts = PodStarts()
    starts.started("Thing", {"a": pod("a", T0 - 500)}, T0, 10.0)  # first seen at mono 10
    later = starts.started("Thing", {"a": pod("a", T0 - 500)}, T0 + 30 - STEP, 40.0)
    assert later["a"].started_at == T0 - 500 - STEP  # 530 s before "now", on the stepped clock


def test_after_a_step_forward_a_pod_is_as_old_as_before_the_step() -> None:
    starts = PodStarts()
    starts.started("Thing", {"a": pod("a", T0 - 5)}, T0, 10.0)
    later = starts.started("Thing", {"a": pod("a", T0 - 5)}, T0 + 30 + 600, 40.0)
    assert later["a"].started_at == T0 - 5 + 600  # 35 s before "now", not 635 s


def test_a_start_ahead_of_the_daemons_clock_counts_from_first_sight() -> None:
    starts = PodStarts()
    first = starts.started("Thing", {"a": pod("a", T0 + 90)}, T0, 10.0)  # apiserver 90 s ahead
    assert first["a"].started_at == T0


def test_a_pod_no_longer_listed_is_forgotten() -> None:
    starts = PodStarts()
    starts.started("Thing", {"a": pod("a", T0)}, T0, 10.0)
    starts.started("Thing", {}, T0 + 1, 11.0)
    # the same uid again (it cannot be, but if): counted as first seen now
    again = starts.started("Thing", {"a": pod("a", T0 + 5000)}, T0 + 2, 12.0)
    assert again["a"].started_at == T0 + 2


class SteppableClock:
    """A wall clock that can step; the monotonic clock never does."""

    def __init__(self) -> None:
        self.t, self.offset = 1000.0, T0 - 1000.0

    def wall(self) -> float:
        return self.t + self.offset

    def mono(self) -> float:
        return self.t


def _fleet(
    tmp_path: Path, clock: SteppableClock
) -> tuple[FakeHeartbeats, Callable[[set[int]], None], Callable[[], list[RecreatePod]]]:
    """Thing (heartbeat timeout 10 s, grace 20 s) on 3 running pods the daemon has seen,
    started now by the apiserver's clock; returns the pods, the heartbeats and a pass that
    returns its silent recreations."""
    pods = FakePods()
    beats = FakeHeartbeats(connected=True, connected_since=clock.wall() - 1000)
    ports = Ports(
        store=FakeStore(),
        rows=FakeRows({"Thing": {f"t{i}" for i in range(30)}, "Rule": {"r1"}}),
        pods=pods,
        pod_cache=FakePodCache(pods),
        heartbeats=beats,
        wall=clock.wall,
        mono=clock.mono,
    )
    heartbeat = {"enabled": True, "timeoutSeconds": 10, "graceSeconds": 20}
    policy = write_policy(tmp_path, Thing={"heartbeat": heartbeat})
    state = DaemonState()
    state.policy_accepted(*load_policy_and_templates(policy))

    def beat(silent: set[int]) -> None:
        # What the adapter's snapshot says: receive times on the wall clock of now.
        beats.last_seen["Thing"] = {i: clock.wall() for i in range(3) if i not in silent}

    def run() -> list[RecreatePod]:
        result = run_pass(ports, state, trigger="test")
        return [op for op in result.plan.ops if isinstance(op, RecreatePod)]

    run()
    pods.run_all()
    for name, p in pods.pods["Thing"].items():  # started now, by the apiserver's clock
        pods.pods["Thing"][name] = replace(p, started_at=clock.wall())
    pods.sync()
    beat(set())
    assert run() == []  # the daemon sees them running (first seen: now)
    return beats, beat, run


SILENT_1 = [RecreatePod("Thing", "iota-dac-1", 1, Reason.HEARTBEAT_SILENT, "uid-2")]


def test_after_a_backward_clock_step_a_silent_worker_is_still_replaced(tmp_path: Path) -> None:
    clock = SteppableClock()
    beats, beat, run = _fleet(tmp_path, clock)
    clock.t += 60  # past the grace, every worker heard
    beat(set())
    assert run() == []

    clock.offset -= STEP  # NTP steps the daemon's wall clock back an hour
    beats.connected_since = clock.wall() - 1000  # the adapter re-dates it on the new clock
    beat(set())
    assert run() == []
    for _ in range(3):  # instance 1 falls silent; the others keep beating
        clock.t += 5
        beat({1})
    assert run() == SILENT_1


def test_after_a_forward_clock_step_a_worker_in_its_grace_stays_in_it(tmp_path: Path) -> None:
    clock = SteppableClock()
    beats, beat, run = _fleet(tmp_path, clock)
    clock.t += 5  # 5 s into the 20 s grace; instance 1's worker not heard since its start
    clock.offset += 600  # NTP steps the daemon's wall clock forward 10 minutes
    beats.connected_since = clock.wall() - 1000
    beat({1})
    assert run() == []  # 5 s old, not 605 s
    clock.t += 20  # past the grace, still not heard: silent now
    beat({1})
    assert run() == SILENT_1
