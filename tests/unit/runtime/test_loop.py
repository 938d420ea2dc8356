"""The scheduler (reconciler.runtime.loop) on in-memory fakes of the ports
(tests/support/fakes.py)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from reconciler.domain.events import RowEvent
from reconciler.reconcile.pass_ports import Ports
from reconciler.runtime.loop import Daemon, Wake, WakeReason
from tests.support.fakes import FakeClock, FakePodCache, FakePods, FakeRows, FakeStore, write_policy
from tests.support.polling import eventually


def make_daemon(folder: Path, clock: FakeClock | None = None) -> tuple[Daemon, FakePods, FakeStore]:
    pods = FakePods()
    store = FakeStore()
    rows = FakeRows({"Thing": {f"t{i}" for i in range(30)}, "Rule": {f"r{i}" for i in range(9)}})
    ports = Ports(store=store, rows=rows, pods=pods, pod_cache=FakePodCache(pods))
    if clock is not None:
        ports.wall, ports.mono = clock.wall, clock.mono
    return Daemon(write_policy(folder, tick=3600), ports), pods, store


@contextmanager
def running(daemon: Daemon) -> Iterator[threading.Thread]:
    thread = threading.Thread(target=daemon.run, name="reconcile-loop", daemon=True)
    thread.start()
    try:
        eventually(lambda: daemon.passes >= 1, timeout=10, what="the first pass")
        yield thread
    finally:
        daemon.stop()
        thread.join(10)
        assert not thread.is_alive()


def rows_of(daemon: Daemon) -> FakeRows:
    rows = daemon.ports.rows
    assert isinstance(rows, FakeRows)
    return rows


def test_a_burst_of_wake_ups_becomes_one_pass(tmp_path: Path) -> None:
    daemon, _, store = make_daemon(tmp_path)
    with running(daemon):
        passes, writes = daemon.passes, store.writes
        rows_of(daemon).tables["Thing"] |= {f"new-{i}" for i in range(200)}
        lookups = rows_of(daemon).lookups
        for i in range(200):
            daemon.on_row_event(RowEvent("Thing", added=frozenset((f"new-{i}",))))
        eventually(lambda: daemon.passes > passes, timeout=10, what="a pass for the burst")
        time.sleep(0.3)  # under test: would a second pass follow (on the test thread)?
        assert daemon.passes == passes + 1
        assert daemon.last_pass is not None and daemon.last_pass.trigger == "event"
        assert store.writes > writes
        assert rows_of(daemon).lookups == lookups + 1  # the burst's ids, checked in one lookup


def assigned(store: FakeStore, kind: str) -> set[str]:
    return set().union(*(i.ids for i in store.read(kind).values()))


def test_a_create_event_for_ids_the_table_lacks_assigns_nothing(tmp_path: Path) -> None:
    daemon, _, store = make_daemon(tmp_path)
    with running(daemon):
        rows_of(daemon).tables["Thing"].add("real")
        daemon.on_row_event(RowEvent("Thing", added=frozenset({"real", "forged-1", "forged-2"})))
        eventually(lambda: "real" in assigned(store, "Thing"), timeout=10)
        assert not {"forged-1", "forged-2"} & assigned(store, "Thing")


def test_a_delete_event_for_ids_the_table_holds_removes_nothing(tmp_path: Path) -> None:
    daemon, _, store = make_daemon(tmp_path)
    with running(daemon):
        rows_of(daemon).tables["Thing"].discard("t1")
        daemon.on_row_event(RowEvent("Thing", removed=frozenset({"t1", "t2", "t3"})))
        eventually(lambda: "t1" not in assigned(store, "Thing"), timeout=10)
        assert {"t2", "t3"} <= assigned(store, "Thing")


def test_row_events_change_nothing_while_the_database_cannot_confirm_them(
    tmp_path: Path,
) -> None:
    daemon, _, store = make_daemon(tmp_path)
    with running(daemon):
        passes = daemon.passes
        rows_of(daemon).down = True
        daemon.on_row_event(RowEvent("Thing", removed=frozenset({"t1", "t2"})))
        time.sleep(0.3)  # under test: no pass follows
        assert daemon.passes == passes
        assert {"t1", "t2"} <= assigned(store, "Thing")


def test_duplicate_row_events_run_no_pass(tmp_path: Path) -> None:
    daemon, _, _ = make_daemon(tmp_path)
    with running(daemon):
        passes = daemon.passes
        for _ in range(5):
            daemon.on_row_event(RowEvent("Thing", added=frozenset(("t1",))))  # already known
        time.sleep(0.3)  # under test: no pass follows
        assert daemon.passes == passes


def test_the_loop_retries_a_blind_pass_sooner_doubling_then_resets_to_the_tick(
    tmp_path: Path,
) -> None:
    clock = FakeClock()
    daemon, _, store = make_daemon(tmp_path, clock)
    assert daemon.load_policy("start")
    store.down = True
    delays = []
    for _ in range(4):
        daemon._pass("tick", full=True)
        delays.append(daemon._next_tick - clock.mono())
        clock.advance(delays[-1])
    assert delays == [1.0, 2.0, 4.0, 8.0]

    store.down = False
    daemon._pass("tick", full=True)
    assert daemon._next_tick - clock.mono() == 3600  # the policy's tick
    store.down = True
    daemon._pass("tick", full=True)
    assert daemon._next_tick - clock.mono() == 1.0  # the backoff started over


def test_nothing_sleeps_on_the_loop_thread(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sleepers: list[str] = []
    real_sleep = time.sleep

    def watched_sleep(seconds: float) -> None:
        sleepers.append(threading.current_thread().name)
        real_sleep(seconds)

    monkeypatch.setattr(time, "sleep", watched_sleep)
    daemon, pods, _ = make_daemon(tmp_path)
    with running(daemon):
        pods.run_all()
        # Every kind of pass: row events, a dead pod (delete, then its successor), a
        # rebalance from REST, a full tick.
        rows_of(daemon).tables["Thing"] |= {"x1", "x2"}
        daemon.on_row_event(RowEvent("Thing", added=frozenset(("x1", "x2"))))
        pods.set_phase("Thing", "iota-dac-1", "Failed")
        daemon.on_pod_change("Thing", pods.pods["Thing"]["iota-dac-1"], "MODIFIED")
        eventually(lambda: pods.pods["Thing"]["iota-dac-1"].terminating, timeout=10)
        pods.finish_deletes()
        daemon.on_pod_change("Thing", None, "DELETED")
        eventually(lambda: "iota-dac-1" in pods.pods["Thing"], timeout=10)
        result = daemon.orchestrate("Rule", {"maxInstances": 5})
        assert not result.failed
        daemon.wake(Wake(WakeReason.TICK))
        passes = daemon.passes
        eventually(lambda: daemon.passes > passes, timeout=10)
    assert "reconcile-loop" not in sleepers


def policy_passes() -> float:
    from reconciler.telemetry import metrics

    value = metrics.REGISTRY.get_sample_value("reconciler_reconciles_total", {"trigger": "policy"})
    return value or 0.0


def transitions() -> float:
    from reconciler.telemetry import metrics

    return metrics.REGISTRY.get_sample_value("reconciler_leader_transitions_total") or 0.0


@pytest.mark.parametrize("reason", [WakeReason.POLICY, WakeReason.RELOAD])
def test_a_pass_woken_by_a_policy_edit_or_sighup_is_counted_as_policy_not_tick(
    tmp_path: Path, reason: WakeReason
) -> None:
    daemon, _, _ = make_daemon(tmp_path)
    with running(daemon):
        before = policy_passes()
        passes = daemon.passes
        daemon.wake(Wake(reason))
        eventually(lambda: daemon.passes > passes, timeout=10, what="the policy pass")
        assert daemon.last_pass is not None and daemon.last_pass.trigger == "policy"
        assert policy_passes() == before + 1


def test_the_leader_transitions_metric_follows_the_elections_own_count(tmp_path: Path) -> None:
    """/v1/status shows the election's count; the metric must say the same, a first win
    included and a win and a loss between two passes both counted."""
    from tests.support.fakes import FakeLeadership

    daemon, _, _ = make_daemon(tmp_path)
    election = FakeLeadership(leading=True, transitions=1)  # won at start
    daemon.ports.leadership = election
    before = transitions()
    with running(daemon):
        eventually(lambda: transitions() == before + 1, timeout=10)
        election.transitions = 3  # lost and won again before the next pass noticed
        passes = daemon.passes
        daemon.wake(Wake(WakeReason.TICK))
        eventually(lambda: daemon.passes > passes, timeout=10)
        assert transitions() == before + 3
