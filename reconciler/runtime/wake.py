"""The loop's wake-ups: every input (the tick, policy edits, SIGHUP, row events, pod changes,
REST calls, leadership) becomes a `Wake` on the loop's one queue (reconciler/runtime/loop.py)."""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass
from enum import StrEnum

from reconciler.domain.model import PassResult


class WakeReason(StrEnum):
    """Why the loop should run now."""

    TIMER = "timer"  # the tick or the heartbeat check is due
    TICK = "tick"  # a full pass now (REST restart/confirm/pin)
    POLICY = "policy"  # policy.yaml or a template changed
    RELOAD = "reload"  # SIGHUP
    ROWS = "rows"  # row events are waiting in PendingRows
    POD = "pod"  # a managed pod changed
    ORCHESTRATE = "orchestrate"  # REST orchestrate: a rebalance, answered through `reply`
    LEADER = "leader"  # leadership changed
    STOP = "stop"


@dataclass
class Wake:
    reason: WakeReason
    kind: str | None = None
    overrides: dict[str, int] | None = None
    reply: Future[PassResult] | None = None


# Row events arriving faster than this while a pass runs are a burst, gathered before the next
# pass (loop.py); a steady stream below it (a platform's churn) is not held back: each pass
# takes what arrived while the last one ran.
BURST_RATE = 2000.0


def in_burst(arrived: int, seconds: float) -> bool:
    """Whether `arrived` row events during a pass of `seconds` are a burst (faster than
    BURST_RATE a second) rather than a steady stream."""
    return arrived > 0 and arrived >= BURST_RATE * max(seconds, 1e-3)
