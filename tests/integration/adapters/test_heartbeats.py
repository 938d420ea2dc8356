"""HeartbeatMonitor against the rig's real Kafka (SPEC "Heartbeats (Kafka)").

Each test uses its own topic. Heartbeats are sent repeatedly until seen, as real workers do
(one a minute): the monitor starts every assignment at the end of the partition, so a
message produced before the group settled is legitimately skipped.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kafka import KafkaProducer

from reconciler.adapters.kafka.heartbeats import HeartbeatMonitor
from tests.support.polling import seconds_until, ticking

TIMEOUT = 30.0


def wait_for(
    cond: Callable[[], bool],
    timeout: float = TIMEOUT,
    what: str = "",
    tick: Callable[[], None] | None = None,
) -> float:
    """Wait until cond() holds, polled every 20 ms and calling tick() (if given) every 0.2 s
    meanwhile; returns the seconds it took."""
    check = cond if tick is None else ticking(cond, tick, every=0.2)
    return seconds_until(check, timeout=timeout, interval=0.02, what=what)


class Producer:
    def __init__(self, bootstrap: str, topic: str) -> None:
        self.topic = topic
        self.producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=0)

    def send(self, value: bytes | dict[str, Any]) -> None:
        if isinstance(value, dict):
            value = json.dumps(value).encode()
        # One key: one partition, so messages keep their order.
        self.producer.send(self.topic, value=value, key=b"hb").get(timeout=10)

    def beat(self, resource: str, instance_id: int, timestamp: float | None = None) -> None:
        ts = time.time() if timestamp is None else timestamp
        self.send({"resource": resource, "instanceId": str(instance_id), "timestamp": f"{ts:.0f}"})

    def close(self) -> None:
        self.producer.close(timeout=5)


class FakeClock:
    """Receive time as the monitor sees it: far from the workers' timestamps on purpose."""

    def __init__(self) -> None:
        self.now = 5_000.0
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self.now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds


@pytest.fixture
def topic() -> str:
    return f"HeartBeat-test-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def producer(kafka: Any, topic: str) -> Iterator[Producer]:
    p = Producer(kafka.bootstrap, topic)
    p.send(b"warm-up")  # creates the topic before any consumer joins (garbage is ignored)
    yield p
    p.close()


@pytest.fixture
def malformed() -> list[tuple[bytes, str]]:
    return []


@pytest.fixture
def make_monitor(
    kafka: Any, topic: str, malformed: list[tuple[bytes, str]]
) -> Iterator[Callable[..., HeartbeatMonitor]]:
    monitors: list[HeartbeatMonitor] = []

    def make(kinds: list[str], **kwargs: Any) -> HeartbeatMonitor:
        kwargs.setdefault("on_malformed", lambda p, r: malformed.append((p, r)))
        monitor = HeartbeatMonitor(kafka.bootstrap, kinds, topic=topic, **kwargs)
        monitors.append(monitor)
        return monitor

    yield make
    for monitor in monitors:
        monitor.stop()


def connected(monitor: HeartbeatMonitor, *kinds: str) -> Callable[[], bool]:
    return lambda: all(monitor.snapshot(k).connected for k in kinds)


def test_heartbeats_from_two_instances_are_recorded_per_kind_at_receive_time(
    make_monitor: Callable[..., HeartbeatMonitor], producer: Producer
) -> None:
    clock = FakeClock()
    monitor = make_monitor(["Thing", "Rule"], clock=clock, monotonic=clock)
    monitor.start()
    took = wait_for(connected(monitor, "Thing", "Rule"), what="both consumers connected")
    print(f"\nconsumers connected {took:.2f}s after start()")
    assert monitor.snapshot("Thing").connected_since == clock.now

    clock.advance(100)

    def beat() -> None:
        # Worker clocks are an hour off: last-seen must still be the receive time.
        skewed = time.time() - 3600
        producer.beat("Thing", 0, skewed)
        producer.beat("Thing", 1, skewed)
        producer.beat("Rule", 7, skewed)

    wait_for(
        lambda: (
            set(monitor.snapshot("Thing").last_seen) == {0, 1}
            and set(monitor.snapshot("Rule").last_seen) == {7}
        ),
        tick=beat,
        what="heartbeats of both kinds",
    )
    assert monitor.snapshot("Thing").last_seen == {0: 5_100.0, 1: 5_100.0}
    assert monitor.snapshot("Rule").last_seen == {7: 5_100.0}


def test_go_worker_heartbeats_without_timestamp_or_with_Timestamp_both_count(
    make_monitor: Callable[..., HeartbeatMonitor],
    producer: Producer,
    malformed: list[tuple[bytes, str]],
) -> None:
    # The Go worker's JSON as the SPEC allows it, bytes as sent: no timestamp at all, and a
    # numeric instanceId with the time under `Timestamp`. Both are heartbeats of their
    # instance, recorded at receive time.
    clock = FakeClock()
    monitor = make_monitor(["Thing"], clock=clock, monotonic=clock)
    monitor.start()
    wait_for(connected(monitor, "Thing"), what="consumer connected")

    def beat() -> None:
        producer.send(b'{"resource":"Thing","instanceId":"3"}')
        producer.send(b'{"resource":"Thing","instanceId":4,"Timestamp":"1700000000"}')

    wait_for(
        lambda: {3, 4} <= set(monitor.snapshot("Thing").last_seen),
        tick=beat,
        what="both Go-format heartbeats recorded",
    )
    assert monitor.snapshot("Thing").last_seen == {3: clock.now, 4: clock.now}
    assert [p for p, _ in malformed if p != b"warm-up"] == []


def test_a_rule_heartbeat_does_not_count_for_thing(
    make_monitor: Callable[..., HeartbeatMonitor], producer: Producer
) -> None:
    monitor = make_monitor(["Thing"])
    monitor.start()
    wait_for(connected(monitor, "Thing"))

    def beat() -> None:
        producer.beat("Rule", 0)  # sent first: same partition, so seen first
        producer.beat("Thing", 1)

    wait_for(lambda: 1 in monitor.snapshot("Thing").last_seen, tick=beat)
    assert set(monitor.snapshot("Thing").last_seen) == {1}
    with pytest.raises(KeyError):
        monitor.snapshot("Rule")  # not a heartbeat-enabled kind here


def test_garbage_on_heartbeat_goes_to_on_malformed_once_and_consumers_keep_running(
    make_monitor: Callable[..., HeartbeatMonitor],
    producer: Producer,
    malformed: list[tuple[bytes, str]],
) -> None:
    monitor = make_monitor(["Thing", "Rule"])
    monitor.start()
    wait_for(connected(monitor, "Thing", "Rule"))

    marker = {"n": 0}

    def beat() -> None:
        # Garbage then a valid heartbeat of each kind, until both kinds have seen the marker.
        producer.send(b"\x00not json")
        producer.send({"resource": "Thing", "instanceId": "x", "timestamp": "1"})
        producer.beat("Thing", 3)
        producer.beat("Rule", 4)
        marker["n"] += 1

    wait_for(
        lambda: (
            3 in monitor.snapshot("Thing").last_seen and 4 in monitor.snapshot("Rule").last_seen
        ),
        tick=beat,
    )
    # A last beat of each kind after every round (one key, one partition: read in order):
    # once both consumers have seen theirs, both are past the garbage of the last round.
    producer.beat("Thing", 5)
    producer.beat("Rule", 6)
    wait_for(
        lambda: (
            5 in monitor.snapshot("Thing").last_seen and 6 in monitor.snapshot("Rule").last_seen
        ),
    )
    # Reported by one consumer only (not once per kind), at most one round per beat().
    payloads = [p for p, _ in malformed]
    assert payloads, "garbage was not reported"
    assert set(payloads) == {
        b"\x00not json",
        b'{"resource": "Thing", "instanceId": "x", "timestamp": "1"}',
    }
    assert len(payloads) <= 2 * marker["n"]
    assert monitor.snapshot("Thing").connected and monitor.snapshot("Rule").connected


def test_a_flood_of_bogus_instance_ids_does_not_grow_what_the_monitor_keeps(
    make_monitor: Callable[..., HeartbeatMonitor],
    producer: Producer,
    malformed: list[tuple[bytes, str]],
) -> None:
    """20,000 distinct instanceIds at or above the limit, through the real broker: none is
    kept, each is counted and reported; real instances are still recorded."""
    monitor = make_monitor(["Thing"])
    monitor.start()
    wait_for(connected(monitor, "Thing"))
    wait_for(
        lambda: 1 in monitor.snapshot("Thing").last_seen, tick=lambda: producer.beat("Thing", 1)
    )

    flood = 20_000
    started = time.monotonic()
    for i in range(flood):
        producer.producer.send(
            producer.topic,
            key=b"hb",
            value=json.dumps({"resource": "Thing", "instanceId": str(10_000 + i)}).encode(),
        )
    producer.producer.flush(timeout=30)
    wait_for(
        lambda: monitor.rejected("Thing") >= flood,
        timeout=60,
        tick=lambda: producer.beat("Thing", 2),
        what="the flood consumed",
    )
    took = time.monotonic() - started
    # Instance 2's beat may still be on its way when the flood's last rejection is counted.
    wait_for(
        lambda: 2 in monitor.snapshot("Thing").last_seen,
        timeout=30,
        tick=lambda: producer.beat("Thing", 2),
        what="instance 2 recorded",
    )
    kept = monitor.snapshot("Thing").last_seen
    print(
        f"\n{flood} bogus instanceIds consumed in {took:.1f} s: kept {len(kept)} entries "
        f"({sorted(kept)}), rejected {monitor.rejected('Thing')}"
    )
    assert set(kept) == {1, 2}
    assert monitor.rejected("Thing") == flood
    bogus = [r for _, r in malformed if "is not below 10000" in r]
    assert len(bogus) == flood
    assert monitor.snapshot("Thing").connected


def test_kafka_stopped_turns_connected_false_in_bounded_time_and_back_after_restart(
    kafka: Any, make_monitor: Callable[..., HeartbeatMonitor], producer: Producer
) -> None:
    monitor = make_monitor(["Thing"], down_after=5.0)
    monitor.start()
    wait_for(connected(monitor, "Thing"))
    wait_for(
        lambda: 0 in monitor.snapshot("Thing").last_seen, tick=lambda: producer.beat("Thing", 0)
    )
    before = monitor.snapshot("Thing")

    t0 = time.monotonic()
    kafka.stop()
    stopped = time.monotonic()
    down = wait_for(lambda: not monitor.snapshot("Thing").connected, timeout=20)
    print(
        f"\nKafka stop took {stopped - t0:.1f}s; connected=False "
        f"{time.monotonic() - stopped:.1f}s after the broker was gone"
    )
    assert down < 10
    # Nothing recorded while down: the loop must see the data as stale, not fresh.
    assert monitor.snapshot("Thing").last_seen == before.last_seen

    restarted_at = time.time()
    t1 = time.monotonic()
    kafka.start()
    ready = time.monotonic()
    wait_for(connected(monitor, "Thing"), timeout=60, what="reconnect after Kafka restart")
    print(
        f"Kafka start took {ready - t1:.1f}s; connected=True {time.monotonic() - ready:.1f}s "
        f"after the broker was ready"
    )
    after = monitor.snapshot("Thing")
    assert after.connected_since is not None and after.connected_since >= restarted_at

    t2 = time.monotonic()
    wait_for(
        lambda: monitor.snapshot("Thing").last_seen.get(1, 0) > restarted_at,
        tick=lambda: producer.beat("Thing", 1),
        timeout=60,
        what="a heartbeat after the restart",
    )
    print(f"first heartbeat after restart recorded within {time.monotonic() - t2:.1f}s")


def test_monitor_started_while_kafka_is_down_neither_crashes_nor_blocks_stop(
    kafka: Any, make_monitor: Callable[..., HeartbeatMonitor], producer: Producer
) -> None:
    kafka.stop()
    monitor = make_monitor(["Thing"])
    monitor.start()
    time.sleep(4)  # under test: bootstraps failing for 4 s, and no connection claimed meanwhile
    assert not monitor.snapshot("Thing").connected
    assert monitor.snapshot("Thing").connected_since is None
    t0 = time.monotonic()
    monitor.stop()
    took = time.monotonic() - t0
    print(f"\nstop() with Kafka down took {took:.2f}s")
    assert took < 5
    # No consumer thread left, and no kafka-python IO thread leaked by the failed bootstraps
    # (its constructor starts one before it fails).
    leftovers = [
        t.name
        for t in threading.enumerate()
        if t.name.startswith("heartbeats-") or "reconciler-heartbeats" in t.name
    ]
    assert leftovers == []

    kafka.start()
    monitor = make_monitor(["Thing"])
    monitor.start()
    wait_for(connected(monitor, "Thing"), timeout=60)
    wait_for(
        lambda: 2 in monitor.snapshot("Thing").last_seen, tick=lambda: producer.beat("Thing", 2)
    )
