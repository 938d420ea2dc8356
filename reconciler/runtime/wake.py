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
