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
