"""A pass's time budget: the deadline (monotonic) it carries through its stages.

Every external call has a deadline of its own (a database statement, ZooKeeper, the
apiserver's `_request_timeout`, Kafka), but a pass makes many calls one after another: an
apiserver that answers each call just before its timeout makes ten pod recreations take
minutes, past systemd's `WatchdogSec`. The budget (RECONCILER_PASS_BUDGET_SECONDS) bounds the
sum. The pipeline checks it between stages (past it, the autoscaler's reads wait: its last
target stays) and the apply stage before each operation: past it, the operations not tried
are left for the next pass, which plans them again from what it observes. Write order stays
safe because nothing at all is applied after the deadline: no receiver can go out after its
giver was left.

It is not a hard stop: the call in flight when the budget runs out ends first (its own
deadline bounds it), so a pass ends within the budget plus one call or one observe stage.
"""

from __future__ import annotations

import math
from collections.abc import Callable
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


def report_overrun(deadline: Deadline, ops_left: int) -> None:
    """A pass ran past its budget: counted, and logged once (the pass's own line)."""
    metrics.PASS_OVERRUNS.inc()
    log.warning(
        "pass over budget",
        budget_s=deadline.budget,
        elapsed_s=round(deadline.elapsed(), 3),
        ops_left=ops_left,
    )
