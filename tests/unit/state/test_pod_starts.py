"""Pods' starts across a wall-clock step (reconciler/state/pod_starts.py): after the daemon's clock
steps back, a pod's start (the apiserver's clock) looks like the future; bounded by when the
daemon first saw the pod (monotonic), the heartbeat grace and silence still run."""

from __future__ import annotations

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


def test_after_a_step_back_a_pod_started_when_the_daemon_first_saw_it() -> None:
    starts = PodStarts()
    starts.started("Thing", {"a": pod("a", T0 - 500)}, T0, 10.0)  # first seen at mono 10
    later = starts.started("Thing", {"a": pod("a", T0 - 500)}, T0 + 30 - STEP, 40.0)
    assert later["a"].started_at == T0 - STEP  # 30 s before "now", on the stepped clock


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


def test_after_a_backward_clock_step_a_silent_worker_is_still_replaced(tmp_path: Path) -> None:
    clock = SteppableClock()
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
    assert run() == [RecreatePod("Thing", "iota-dac-1", 1, Reason.HEARTBEAT_SILENT, "uid-2")]
