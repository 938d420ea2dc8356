"""HeartbeatMonitor's own bookkeeping, without Kafka: what it keeps is bounded, and ages stay
true across a wall-clock step (reconciler/adapters/kafka/heartbeats.py). The consumer thread hands
every record's value to `_record`; these tests call it the same way."""

from __future__ import annotations

import json
import tracemalloc

from reconciler.adapters.kafka.heartbeats import INSTANCE_ID_LIMIT, HeartbeatMonitor


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def beat(instance_id: int, resource: str = "Thing") -> bytes:
    return json.dumps({"resource": resource, "instanceId": str(instance_id)}).encode()


def monitor(**kwargs: object) -> tuple[HeartbeatMonitor, list[str]]:
    reasons: list[str] = []
    m = HeartbeatMonitor(
        "unused:9092", ["Thing", "Rule"], on_malformed=lambda _p, r: reasons.append(r), **kwargs
    )
    return m, reasons


def test_a_flood_of_distinct_bogus_instance_ids_keeps_nothing_and_is_counted() -> None:
    reported = {"n": 0, "first": ""}

    def on_malformed(_payload: bytes, reason: str) -> None:
        reported["n"] += 1
        reported["first"] = reported["first"] or reason

    m = HeartbeatMonitor("unused:9092", ["Thing", "Rule"], on_malformed=on_malformed)
    for i in range(3):
        m._record("Thing", beat(i))
    flood = 50_000
    payloads = [beat(INSTANCE_ID_LIMIT + i) for i in range(flood)]
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for payload in payloads:
            m._record("Thing", payload)
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    print(
        f"\n{flood} bogus instanceIds: kept {len(m.snapshot('Thing').last_seen)} entries, "
        f"memory traced +{grown} bytes"
    )
    assert set(m.snapshot("Thing").last_seen) == {0, 1, 2}
    assert m.rejected("Thing") == flood and m.rejected("Rule") == 0
    assert reported["n"] == flood
    assert reported["first"] == f"instanceId {INSTANCE_ID_LIMIT} is not below {INSTANCE_ID_LIMIT}"
    assert grown < 64 * 1024, grown  # one entry per id would be several MB


def test_ids_below_the_limit_are_kept_at_most_once_each() -> None:
    m, _ = monitor(instance_id_limit=100)
    for _ in range(3):
        for i in range(150):
            m._record("Thing", beat(i))
    assert len(m.snapshot("Thing").last_seen) == 100
    assert m.rejected("Thing") == 3 * 50


def test_another_kinds_bogus_id_is_left_to_that_kinds_consumer() -> None:
    m, reasons = monitor()
    m._record("Thing", beat(INSTANCE_ID_LIMIT, resource="Rule"))
    assert m.rejected("Thing") == 0 and reasons == []
    m._record("Rule", beat(INSTANCE_ID_LIMIT, resource="Rule"))
    assert m.rejected("Rule") == 1 and len(reasons) == 1


def test_a_wall_clock_step_does_not_age_heartbeats() -> None:
    """Ages are measured on the monotonic clock: an NTP step of an hour between a heartbeat
    and the pass must not make the worker look an hour silent."""
    wall, mono = Clock(1_700_000_000.0), Clock(500.0)
    m, _ = monitor(clock=wall, monotonic=mono)
    m._set_connected("Thing", True)
    m._record("Thing", beat(3))
    mono.now += 10
    wall.now += 10 + 3600  # 10 s passed; the wall clock also jumped an hour ahead
    snap = m.snapshot("Thing")
    assert wall.now - snap.last_seen[3] == 10
    assert snap.connected_since is not None and wall.now - snap.connected_since == 10
    wall.now -= 2 * 3600  # and back, an hour behind
    assert wall.now - m.snapshot("Thing").last_seen[3] == 10


def test_snapshots_of_unchanged_state_are_equal() -> None:
    """The wall/monotonic offset is read anew each time (microseconds apart); it must not
    make the same heartbeat look different in two snapshots."""
    m, _ = monitor()
    m._record("Thing", beat(0))
    first = m.snapshot("Thing")
    assert all(m.snapshot("Thing") == first for _ in range(1000))
