"""Per-operation retry memory between passes, written by apply: backoff after failures
(`reconciler.domain.backoff.Backoff`, doubling up to its cap), and terminal refusals not
retried until the operation or the policy changes (a new policy forgets them:
`DaemonState.policy_accepted`)."""

from __future__ import annotations

import threading

from reconciler.domain.backoff import Backoff
from reconciler.domain.model import Op, Outcome
from reconciler.domain.outcomes import OutcomeResult, SkipReason
from reconciler.state.part import MemoryPart

OP_BACKOFF_BASE_SECONDS = 1.0
OP_BACKOFF_MAX_SECONDS = 300.0


class OpRetries(MemoryPart):
    def __init__(self, lock: threading.RLock | None = None) -> None:
        super().__init__(lock)
        self._backoff: dict[str, Backoff] = {}
        self._rejected: dict[str, tuple[Op, str]] = {}  # key -> (op, error)

    def skip_reason(self, op: Op, now: float) -> tuple[SkipReason, str | None] | None:
        """Why `op` must not be tried now, and the refusal it refers to; None: try it.
        `now` is monotonic."""
        with self._lock:
            rejected = self._rejected.get(op.key)
            if rejected is not None and rejected[0] == op:
                return SkipReason.REFUSED_BEFORE, rejected[1]
            backoff = self._backoff.get(op.key)
            if backoff is not None and not backoff.ready(now):
                return SkipReason.BACKING_OFF, None
            return None

    def done(self, outcome: Outcome, now: float) -> float | None:
        """Record an operation's outcome; returns the retry delay when it failed."""
        with self._lock:
            op = outcome.op
            if outcome.result is OutcomeResult.SKIPPED:
                return None
            if outcome.result is OutcomeResult.FAILED:
                if not outcome.retry:
                    self._rejected[op.key] = (op, outcome.error or "")
                    return None
                backoff = self._backoff.setdefault(
                    op.key, Backoff(OP_BACKOFF_BASE_SECONDS, OP_BACKOFF_MAX_SECONDS)
                )
                return backoff.failed(now)
            self._backoff.pop(op.key, None)
            self._rejected.pop(op.key, None)
            return None

    def forget_refusals(self) -> None:
        """A new policy: refusals of operations planned under the old one may be tried again."""
        with self._lock:
            self._rejected.clear()
