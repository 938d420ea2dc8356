"""What the planner says about the heartbeat source (reconciler/rules/silence.py): a daemon
that has not joined Kafka yet is not reporting an outage, and none of these notes ever lets
silence be acted on."""

from __future__ import annotations

from reconciler.domain.ids import SortedIds
from reconciler.domain.model import Heartbeats, Pod
from reconciler.policy.schema import HeartbeatPolicy
from reconciler.rules.silence import HEARTBEATS_DISABLED, silent_instances

POLICY = HeartbeatPolicy(enabled=True, timeout_seconds=30, grace_seconds=0)
FINAL = {0: SortedIds(("a",))}
PODS: dict[str, Pod] = {}


def note(hb: Heartbeats | None) -> tuple[str | None, set[int]]:
    return silent_instances(POLICY, hb, PODS, FINAL, 1000.0, "iota-dac")


def test_no_source_at_all_says_disabled() -> None:
    assert note(None) == (f"{HEARTBEATS_DISABLED}: silence is not acted on", set())


def test_a_source_never_reached_since_start_is_not_yet_an_outage() -> None:
    found = note(Heartbeats(connected=False, connected_since=None))
    assert found == ("heartbeat source not reached yet: silence is not acted on", set())


def test_a_source_lost_after_it_was_reached_is_unreachable() -> None:
    found = note(Heartbeats(connected=False, connected_since=500.0))
    assert found == ("heartbeat source unreachable: silence is not acted on", set())


def test_a_connected_source_has_no_note() -> None:
    assert note(Heartbeats(connected=True, connected_since=999.0))[0] is None


RUNNING = {f"iota-dac-{i}": Pod(f"iota-dac-{i}", i, "Running", started_at=0.0) for i in (0, 1)}
TWO = {0: SortedIds(("a",)), 1: SortedIds(("b",))}


def judged(answered_at: float | None, heard_1: float = 920.0) -> set[int]:
    """Instance 0's worker last heard at 900, instance 1's at `heard_1`; timeout 30; now 1000."""
    heard = {0: 900.0, 1: heard_1}
    hb = Heartbeats(connected=True, connected_since=0.0, last_seen=heard, answered_at=answered_at)
    return silent_instances(POLICY, hb, RUNNING, TWO, 1000.0, "iota-dac")[1]


def test_a_worker_is_silent_when_the_broker_answered_after_its_timeout() -> None:
    assert judged(answered_at=945.0) == {0}  # 0 silent for 45 s while the broker answered
    assert judged(answered_at=None, heard_1=990.0) == {0}  # not said: judged as of now


def test_silence_is_not_counted_past_the_brokers_last_answer() -> None:
    """A black-holed link fails no call at once: the consumer notices seconds later. Until
    then the broker's last answer caps the silence, so no worker is recreated for it."""
    assert judged(answered_at=925.0, heard_1=990.0) == set()  # 25 s proven: under the timeout
