"""A pass's time budget: the deadline (monotonic) it carries through its stages.

Every external call has a deadline of its own (a database statement, ZooKeeper, the
apiserver's `_request_timeout`, Kafka), but a pass makes many calls one after another: an
apiserver that answers each call just before its timeout makes ten pod recreations take
minutes, past systemd's `WatchdogSec`. The budget (RECONCILER_PASS_BUDGET_SECONDS) bounds the
sum. The budget is shared among the kinds in turn: observe checks it before each kind and
each of its reads, and bounds every read by what is left (reconciler/domain/call_limit.py);
a kind it does not get to is blind for this pass and goes first in the next one. The intend
stage checks it before each kind's autoscaler and quota reads (past it, the last target and
limit stay), and the apply stage before each operation: past it, the operations not tried
are left for the next pass, which plans them again from what it observes. Write order stays
safe because nothing at all is applied after the deadline: no receiver can go out after its
giver was left.

It is not a hard stop: a read cut by the budget is still given `MIN_CALL_SECONDS` (a
database connect its own limit), a leader proves its lock before applying (one ZooKeeper
round trip), and the write in flight when the budget runs out ends on its own deadline, so a
pass ends within the budget plus a few such calls, however many kinds it has.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from reconciler.telemetry import metrics
from reconciler.telemetry.logs import log


@dataclass(frozen=True, slots=True)
class Deadline:
    started: float  # on `clock`, monotonic
    budget: float  # seconds
    clock: Callable[[], float]

    @classmethod
    def start(cls, budget: float, clock: Callable[[], float]) -> Deadline:
        if not budget > 0:
            raise ValueError(f"a pass budget must be positive, got {budget}")
        return cls(clock(), budget, clock)

    @classmethod
    def unbounded(cls, clock: Callable[[], float]) -> Deadline:
        """No budget (`reconciler plan`, tests that run single passes)."""
        return cls(clock(), math.inf, clock)

    def passed(self) -> bool:
        return self.clock() - self.started >= self.budget

    def elapsed(self) -> float:
        return self.clock() - self.started

    def left(self) -> float:
        """Seconds left before the deadline (0 once past it; inf without a budget)."""
        return max(0.0, self.budget - self.elapsed())


def report_overrun(deadline: Deadline, ops_left: int, unobserved: Sequence[str] = ()) -> None:
    """A pass ran past its budget: counted, and logged once (the pass's own line), with the
    kinds it did not finish observing (read first, or again, by the next pass)."""
    metrics.PASS_OVERRUNS.inc()
    log.warning(
        "pass over budget",
        budget_s=deadline.budget,
        elapsed_s=round(deadline.elapsed(), 3),
        ops_left=ops_left,
        unobserved=list(unobserved),
    )
