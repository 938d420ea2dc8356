"""The vocabulary of what became of an operation, as types rather than strings to compare.

Their values are the strings they replaced, so metric labels, log fields and JSON answers
read exactly as before. `reconciler.domain.model.Outcome` carries them.
"""

from __future__ import annotations

from enum import StrEnum


class OutcomeResult(StrEnum):
    """What became of one operation of a plan."""

    OK = "ok"
    # Retried with backoff, or never when the outcome's `retry` is False (a terminal refusal).
    FAILED = "failed"
    PENDING = "pending"  # expected (`NotYet`): finishes on a later pass, without backoff
    SKIPPED = "skipped"  # not tried this pass; the outcome's `skip` says why


class SkipReason(StrEnum):
    """Why an operation was not tried this pass. The value is the outcome's `error` text."""

    # The pass budget ran out (reconcile/budget.py): left for the next pass, which follows.
    OVER_BUDGET = "pass over budget: left for the next pass"
    # A terminal refusal of this very operation: not retried until it or the policy changes.
    REFUSED_BEFORE = "refused before, not retried until its inputs change"
    BACKING_OFF = "backing off after earlier failures"
    # The write order (never two owners, reconcile/apply.py): an earlier write did not go
    # through, so what depends on it waits.
    GIVER_FAILED = "giver write failed: its ids are still on another instance"
    EARLIER_WRITE_FAILED = "an earlier write of this instance did not go through"
    INSTANCE_WRITE_FAILED = "instance write failed"
    SLOW_START_STOPPED = "slow start stopped after a failed batch"

    def text(self, detail: str | None = None) -> str:
        """The outcome's `error`: the reason, and what it refers to when there is more to say."""
        return self.value if detail is None else f"{self.value}: {detail}"


class System(StrEnum):
    """The system an operation writes; the values name the sources as `status` reports them."""

    ZOOKEEPER = "zookeeper"
    KUBERNETES = "kubernetes"
