"""What one Kubernetes Event about a pod is: an occurrence, the series it aggregates into, the
per-pod token bucket that rate-limits writes, and the events.k8s.io/v1 body. Pure; the
recorder (events.py) owns the thread and the apiserver calls.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

CONTROLLER = "reconciler"
NOTE_LIMIT = 1024  # bytes (apiserver validation)
FIELD_LIMIT = 128  # action, reason, reportingInstance


@dataclass(frozen=True)
class PodEvent:
    """One occurrence: something the daemon did to (or saw of) a pod."""

    kind: str  # resource kind (Thing, Rule): for logs only; the Event regards the Pod
    namespace: str
    pod: str
    action: str  # what the daemon did: Create, Delete, Recreate, Adopt
    reason: str  # why: PodMissing, PodDead, HeartbeatSilent, ScaleDown
    note: str
    type: str  # Normal or Warning
    uid: str | None
    at: float  # wall clock of the occurrence
    mono: float  # monotonic clock of the occurrence

    @property
    def key(self) -> tuple[str, ...]:
        """Isomorphic occurrences (client-go: same regarding, reason, action, type)."""
        return (self.namespace, self.pod, self.uid or "", self.reason, self.action, self.type)


@dataclass
class Series:
    """One Event on the apiserver (or about to be) and the occurrences it stands for."""

    first: PodEvent
    count: int = 1
    last_at: float = 0.0
    last_mono: float = 0.0
    name: str | None = None  # the Event's name once created
    sent: int = 0  # occurrences the apiserver knows about
    tries: int = 0  # failed writes of the current count
    deferred: bool = False  # a write is due and waits for a token

    @property
    def dirty(self) -> bool:
        return self.count != self.sent


class TokenBucket:
    """`burst` tokens, one more every `refill_seconds`, up to `burst`."""

    def __init__(self, burst: int, refill_seconds: float, now: float) -> None:
        self.burst = burst
        self.refill = refill_seconds
        self.tokens = float(burst)
        self.stamp = now

    def _top_up(self, now: float) -> None:
        if now > self.stamp:
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) / self.refill)
        self.stamp = now

    def peek(self, now: float) -> bool:
        self._top_up(now)
        return self.tokens >= 1

    def take(self, now: float) -> bool:
        if not self.peek(now):
            return False
        self.tokens -= 1
        return True

    def full(self, now: float) -> bool:
        self._top_up(now)
        return self.tokens >= self.burst


def micro_time(t: float) -> str:
    """metav1.MicroTime: RFC 3339 with microseconds, UTC."""
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _clip(text: str, limit: int) -> str:
    """At most `limit` UTF-8 bytes, cut on a character boundary."""
    data = text.encode()
    if len(data) <= limit:
        return text
    return data[: limit - 3].decode(errors="ignore") + "..."


def event_body(series: Series, identity: str) -> dict[str, Any]:
    """The events.k8s.io/v1 Event that creates `series` on the apiserver."""
    ev = series.first
    regarding: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "namespace": ev.namespace,
        "name": ev.pod,
    }
    if ev.uid:
        regarding["uid"] = ev.uid
    body: dict[str, Any] = {
        "apiVersion": "events.k8s.io/v1",
        "kind": "Event",
        # As client-go: <regarding name>.<event time in hex>; here microseconds and 4 random
        # hex digits, so two occurrences in the same microsecond still get two names.
        "metadata": {
            "name": f"{ev.pod}.{int(ev.at * 1e6):x}{secrets.token_hex(2)}",
            "namespace": ev.namespace,
        },
        "eventTime": micro_time(ev.at),
        "reportingController": CONTROLLER,
        "reportingInstance": identity,
        "action": ev.action,
        "reason": ev.reason,
        "type": ev.type,
        "regarding": regarding,
        "note": ev.note,
    }
    if series.count > 1:
        body["series"] = series_of(series)
    return body


def series_of(series: Series) -> dict[str, Any]:
    return {"count": series.count, "lastObservedTime": micro_time(series.last_at)}
