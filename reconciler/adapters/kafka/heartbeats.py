"""Kafka `HeartBeat` monitor: last heartbeat per instance, and whether Kafka itself is visible.

docs/contracts.md "Heartbeats": topic `HeartBeat`, from the latest offset. Never the old
orchestrator's group `iota-orchestrator-<Resource>` (beside it at cutover, the two would
split the partitions): ours is `<group>-<Resource>`, `<group>` defaulting to
`reconciler-<identity>`, so the leader and every standby each read all partitions. The old
orchestrator recreated every pod when Kafka was down; this module says truthfully when it
cannot see heartbeats (`Heartbeats.connected`), so the planner never blames workers for it.

Behaviour of kafka-python 3.0 this relies on, checked against a real Kafka 4.3 broker:
- `poll()` never reports a broker outage: it returns `{}` and the client reconnects in the
  background (dpkp/kafka-python#1474: "poll will continue to operate during cluster
  failure"). `bootstrap_connected()` stays False even while fetching works, so it is useless.
  What does fail is a request with a deadline: `end_offsets(partitions, timeout_ms)` (one
  ListOffsets round trip to the partition leader) raises KafkaTimeoutError while the broker
  is down and answers in milliseconds when it is up. Health = a probe or a record succeeded
  recently AND the group gave us partitions (no assignment means no heartbeats can arrive).
- The constructor bootstraps synchronously and raises KafkaTimeoutError when no broker
  answers, after it already started its IO thread; that thread is left running. We keep a
  handle on the half-built object to close it, or every retry during an outage would leak one.
- Rebalance listeners run on the client's IO thread: only non-blocking calls in them.
- kafka-python's default `reconnect_backoff_max_ms` is long; a short cap makes recovery prompt.

Last-seen times are the RECEIVE time, not the worker's timestamp: worker clocks may skew,
and the planner compares last-seen with its own `now`. So the Go worker's forms all count
(`events.parse_heartbeat`): `instanceId` as "3" or 3, the time under `timestamp` or
`Timestamp`, or no time at all. Offsets are never committed and every assignment seeks to
the end: an old committed position (the old orchestrator's, same group name) would replay
stale heartbeats that would then look fresh. `answered_at` in a snapshot is the broker's last
proven answer: silence is judged up to it only (a black-holed link fails no call at once).

Receive times are kept on the monotonic clock; `snapshot()` gives them as Unix seconds
of the wall clock of that moment, so ages (`now - last_seen`) stay true across an NTP step
(with wall-clock times, a step forward past the timeout would make every worker silent).
Memory is bounded: an instanceId at or above `instance_id_limit` (maxInstances is at most
100) is not kept but counted (`rejected(kind)`) and reported as malformed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from kafka import KafkaConsumer, TopicPartition
from kafka.consumer.subscription_state import ConsumerRebalanceListener

from reconciler.adapters.kafka.config import KafkaSecurity
from reconciler.adapters.kafka.diagnosis import bootstrap_failure, watch_kafka_logs
from reconciler.domain.events import MalformedMessage, parse_heartbeat
from reconciler.domain.model import Heartbeats

__all__ = ["HeartbeatMonitor", "group_id"]

# The logger name is part of the log format operators filter on: it does not follow the
# module when code moves (docs/architecture.md "Logs").
log = logging.getLogger("reconciler.adapters.heartbeats")

POLL_TIMEOUT_MS = 500  # also bounds how long stop() waits for a consumer thread
INSTANCE_ID_LIMIT = 10_000  # ids at or above are bogus: instance ids stay below maxInstances
PROBE_TIMEOUT_MS = 1000
BOOTSTRAP_TIMEOUT_MS = 1500
RETRY_DELAY_S = 1.0  # between attempts to (re)create a consumer


OLD_ORCHESTRATOR_GROUP = "iota-orchestrator"  # never ours


def group_id(group: str, kind: str) -> str:
    """The consumer group of one kind's heartbeat consumer."""
    return f"{group}-{kind}"


class _SeekToEnd(ConsumerRebalanceListener):
    """Start every newly assigned partition at its end (see module docstring)."""

    def __init__(self, consumer: KafkaConsumer, kind: str) -> None:
        self._consumer = consumer
        self._kind = kind

    def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        log.debug("heartbeats %s: partitions revoked %s", self._kind, sorted(revoked))

    def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        partitions = list(assigned)
        log.info("heartbeats %s: partitions assigned %s", self._kind, sorted(partitions))
        if not partitions:  # seek_to_end() with no argument means "all", and raises if none
            return
        try:
            # Only marks the partitions for an offset reset: safe on the IO thread.
            self._consumer.seek_to_end(*partitions)
        except Exception:  # an exception here would surface from poll() as KafkaError
            log.exception("heartbeats %s: seek_to_end failed", self._kind)


class _KindState:
    """What one kind's consumer thread knows; read by snapshot() under the monitor's lock."""

    def __init__(self) -> None:
        self.connected = False
        self.connected_since: float | None = None  # monotonic
        self.answered_at: float | None = None  # monotonic: last record or probe answered
        self.last_seen: dict[int, float] = {}  # instance id -> monotonic receive time
        self.rejected = 0  # heartbeats whose instanceId was at or above the limit


class HeartbeatMonitor:
    """One consumer thread per heartbeat-enabled kind; `snapshot(kind)` for the loop.

    `on_malformed(payload, reason)` runs on a consumer thread. Every kind's consumer reads
    the whole topic, so only the first kind's consumer reports malformed values: one garbage
    message is counted once, not once per kind.
    """

    def __init__(
        self,
        bootstrap: str,
        kinds: list[str],
        *,
        topic: str = "HeartBeat",
        group: str = "reconciler",
        on_malformed: Callable[[bytes, str], None] | None = None,
        on_heartbeat: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        probe_interval: float = 2.0,
        down_after: float = 5.0,
        instance_id_limit: int = INSTANCE_ID_LIMIT,
        security: KafkaSecurity | None = None,
    ) -> None:
        """`down_after`: seconds without a successful probe or record before `connected`
        turns False (one slow probe must not reset everyone's silence clock). `clock` is the
        wall clock snapshots are expressed in, `monotonic` the one receive times are measured
        on (see the module docstring)."""
        if not kinds:
            raise ValueError("no heartbeat-enabled kinds")
        if len(set(kinds)) != len(kinds):
            raise ValueError(f"duplicate kinds: {kinds}")
        self.bootstrap = bootstrap
        self._security = security or KafkaSecurity()
        self._security.check()  # SASL and TLS (config.py): fail now, not silently
        watch_kafka_logs()  # so a failed bootstrap can say "authentication failed"
        self.kinds = list(kinds)
        self.topic = topic
        if group == OLD_ORCHESTRATOR_GROUP:
            raise ValueError(f"{group!r} is the old orchestrator's consumer group: pick another")
        self.group = group
        self._on_malformed = on_malformed
        self._on_heartbeat = on_heartbeat  # called with the kind for every heartbeat recorded
        self._clock = clock
        self._mono = monotonic
        self._offset: float | None = None  # see _wall_offset
        self._instance_id_limit = instance_id_limit
        self._probe_interval = probe_interval
        self._down_after = down_after
        self._lock = threading.Lock()
        self._states = {kind: _KindState() for kind in self.kinds}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    # --- public ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start one consumer thread per kind; returns at once, Kafka may still be down."""
        if self._threads:
            return
        self._stop.clear()
        for kind in self.kinds:
            thread = threading.Thread(
                target=self._run, args=(kind,), name=f"heartbeats-{kind}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop and join every consumer thread (a few seconds at most, even with Kafka down)."""
        self._stop.set()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                log.warning("heartbeats: thread %s did not stop in time", thread.name)
        self._threads = []
        with self._lock:
            for state in self._states.values():
                state.connected = False

    def snapshot(self, kind: str) -> Heartbeats:
        """What is known about `kind` now, times in Unix seconds of the wall clock now (see
        the module docstring); KeyError for a kind that is not monitored."""
        with self._lock:
            state = self._states[kind]
            offset = self._wall_offset()
            since, answered = state.connected_since, state.answered_at
            return Heartbeats(
                connected=state.connected,
                connected_since=None if since is None else since + offset,
                last_seen={i: t + offset for i, t in state.last_seen.items()},
                answered_at=None if answered is None else answered + offset,
            )

    def _wall_offset(self) -> float:
        """Wall clock minus monotonic clock, to turn a monotonic time into Unix seconds.
        Called under the lock. Kept as it was until the two clocks part by more than a
        millisecond (a step), so two snapshots of unchanged state are equal: reading the two
        clocks one after the other differs by a few microseconds every time."""
        offset = self._clock() - self._mono()
        if self._offset is None or abs(offset - self._offset) > 0.001:
            self._offset = offset
        return self._offset

    def rejected(self, kind: str) -> int:
        """Heartbeats of `kind` not kept because their instanceId was at or above the limit."""
        with self._lock:
            return self._states[kind].rejected

    def forget(self, kind: str, instance_id: int) -> None:
        """Drop an instance's last-seen time (the instance was deleted)."""
        with self._lock:
            state = self._states.get(kind)  # kinds without heartbeats have nothing to forget
            if state is not None:
                state.last_seen.pop(instance_id, None)

    # --- consumer thread --------------------------------------------------------------------

    def _set_connected(self, kind: str, connected: bool, why: str = "") -> None:
        with self._lock:
            state = self._states[kind]
            if connected == state.connected:
                return
            state.connected = connected
            if connected:
                state.connected_since = self._mono()
        if connected:
            log.info("heartbeats %s: receiving from Kafka %s", kind, self.bootstrap)
        else:
            log.warning(
                "heartbeats %s: not receiving from Kafka %s (%s); silence is not counted",
                kind,
                self.bootstrap,
                why or "stopped",
            )

    def _new_consumer(self, kind: str) -> KafkaConsumer | None:
        # Built in two steps so that a constructor failing after starting its IO thread can
        # still be closed (see module docstring).
        consumer = KafkaConsumer.__new__(KafkaConsumer)
        try:
            consumer.__init__(  # type: ignore[misc]
                bootstrap_servers=self.bootstrap,
                group_id=group_id(self.group, kind),
                client_id=f"reconciler-heartbeats-{kind}",
                auto_offset_reset="latest",
                enable_auto_commit=False,
                bootstrap_timeout_ms=BOOTSTRAP_TIMEOUT_MS,
                reconnect_backoff_max_ms=2000,
                **self._security.consumer_options(),
            )
        except Exception as e:
            log.debug("heartbeats %s: cannot create consumer: %r", kind, e)
            client = getattr(consumer, "_client", None)
            if client is not None:
                try:
                    client.close()
                except Exception:
                    log.debug("heartbeats %s: closing half-built client failed", kind)
            return None
        consumer.subscribe([self.topic], listener=_SeekToEnd(consumer, kind))
        return consumer

    def _run(self, kind: str) -> None:
        failure: str | None = None  # why the last bootstrap failed, logged when it changes
        while not self._stop.is_set():
            consumer = self._new_consumer(kind)
            if consumer is None:
                why = bootstrap_failure(self.bootstrap, self._security)
                if why != failure:  # once per cause, not every second
                    log.warning(
                        "heartbeats %s: no bootstrap from %s: %s", kind, self.bootstrap, why
                    )
                failure = why
                self._set_connected(kind, False, why)
                self._stop.wait(RETRY_DELAY_S)
                continue
            failure = None
            try:
                self._consume(kind, consumer)
            except Exception:
                # kafka-python handles outages itself; anything reaching here is unexpected,
                # so start over with a fresh consumer rather than trust its state.
                log.exception("heartbeats %s: consumer failed; recreating it", kind)
                self._set_connected(kind, False, "consumer failed")
                self._stop.wait(RETRY_DELAY_S)
            finally:
                try:
                    consumer.close(autocommit=False, timeout_ms=1000)
                except Exception:
                    log.debug("heartbeats %s: close failed", kind, exc_info=True)
        self._set_connected(kind, False)

    def _consume(self, kind: str, consumer: KafkaConsumer) -> None:
        last_ok = -float("inf")  # monotonic time of the last proof that the broker answers
        next_probe = 0.0
        while not self._stop.is_set():
            batches = consumer.poll(timeout_ms=POLL_TIMEOUT_MS)
            now = time.monotonic()
            if batches:
                last_ok = self._answered(kind, now)
                for records in batches.values():
                    for record in records:
                        self._record(kind, record.value)
            assignment = consumer.assignment()
            if assignment and now >= next_probe:
                next_probe = now + self._probe_interval
                if self._probe(kind, consumer, assignment):
                    last_ok = self._answered(kind, time.monotonic())
            if not assignment:
                # Broker up but no partition for us (group forming, topic missing, or another
                # member of our group holds them): no heartbeat can arrive, so not healthy.
                self._set_connected(kind, False, f"no partition of {self.topic} assigned")
            elif time.monotonic() - last_ok >= self._down_after:
                self._set_connected(kind, False, f"broker silent for {self._down_after:.0f} s")
            else:
                self._set_connected(kind, True)

    def _answered(self, kind: str, at: float) -> float:
        with self._lock:
            self._states[kind].answered_at = at
        return at

    def _probe(self, kind: str, consumer: KafkaConsumer, assignment: set[TopicPartition]) -> bool:
        try:
            consumer.end_offsets(list(assignment), timeout_ms=PROBE_TIMEOUT_MS)
        except Exception as e:  # KafkaTimeoutError while down; anything else: also not healthy
            log.debug("heartbeats %s: probe failed: %r", kind, e)
            return False
        return True

    def _record(self, kind: str, value: Any) -> None:
        payload = value if isinstance(value, bytes) else b""  # None: a tombstone
        try:
            hb = parse_heartbeat(payload)
        except MalformedMessage as e:
            self._report_malformed(kind, payload, e.reason)
            return
        if hb.resource != kind:
            return  # another kind's heartbeat: its own consumer records it
        if hb.instance_id >= self._instance_id_limit:
            self._reject(kind, payload, hb.instance_id)
            return
        received = self._mono()
        with self._lock:
            self._states[kind].last_seen[hb.instance_id] = received
        if self._on_heartbeat is not None:
            try:
                self._on_heartbeat(kind)
            except Exception:
                log.exception("on_heartbeat failed")
        if hb.timestamp is None:  # none sent, or none that reads as a time: still alive
            log.debug("heartbeat %s/%d (no worker time)", kind, hb.instance_id)
        else:
            log.debug(
                "heartbeat %s/%d (worker time %.0f, skew %.1f s)",
                kind,
                hb.instance_id,
                hb.timestamp,
                self._clock() - hb.timestamp,
            )

    def _reject(self, kind: str, payload: bytes, instance_id: int) -> None:
        """Count a heartbeat whose instanceId no instance can have, and report it as malformed
        (only this kind's consumer records this kind, so it is reported once)."""
        with self._lock:
            self._states[kind].rejected += 1
        reason = f"instanceId {instance_id} is not below {self._instance_id_limit}"
        if self._on_malformed is None:
            log.warning("heartbeats: %s on %s; sample %r", reason, self.topic, payload[:200])
            return
        try:
            self._on_malformed(payload, reason)
        except Exception:
            log.exception("heartbeats: on_malformed failed")

    def _report_malformed(self, kind: str, payload: bytes, reason: str) -> None:
        if kind != self.kinds[0]:
            return
        if self._on_malformed is None:
            log.warning(
                "heartbeats: malformed message on %s: %s; sample %r",
                self.topic,
                reason,
                payload[:200],
            )
            return
        try:
            self._on_malformed(payload, reason)
        except Exception:
            log.exception("heartbeats: on_malformed failed")
