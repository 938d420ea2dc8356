"""Per-operation retry memory between passes (kept in DaemonState, behind its lock): backoff
after failures (1 s doubling to 300 s), and terminal refusals not retried until the operation
or the policy changes."""

from __future__ import annotations

from dataclasses import dataclass, field

from reconciler.domain.backoff import Backoff
from reconciler.domain.model import Op, Outcome

OP_BACKOFF_BASE_SECONDS = 1.0
OP_BACKOFF_MAX_SECONDS = 300.0


@dataclass
class OpRetries:
    _backoff: dict[str, Backoff] = field(default_factory=dict)
    _rejected: dict[str, tuple[Op, str]] = field(default_factory=dict)  # key -> (op, error)

    def skip_reason(self, op: Op, now: float) -> str | None:
        """Why `op` must not be tried now, or None. `now` is monotonic."""
        rejected = self._rejected.get(op.key)
        if rejected is not None and rejected[0] == op:
            return f"refused before, not retried until its inputs change: {rejected[1]}"
        backoff = self._backoff.get(op.key)
        if backoff is not None and not backoff.ready(now):
            return "backing off after earlier failures"
        return None

    def done(self, outcome: Outcome, now: float) -> float | None:
        """Record an operation's outcome; returns the retry delay when it failed."""
        op = outcome.op
        if outcome.result == "skipped":
            return None
        if outcome.result == "failed":
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
        self._rejected.clear()
