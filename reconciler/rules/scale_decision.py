"""A scaling decision as a value: what each metric said, what was decided and what limited it,
and its last stage, `limit_to_room`, which caps a scale-up to the room on the nodes.

`scaling.py` makes decisions; `capacity.py` measures the room; `status`, the log and the
metrics read `Decision.summary()` and `Decision.explain()`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal, get_args

from reconciler.domain.model import PodUsage
from reconciler.rules.capacity import Room

Factor = Literal[
    "tolerance",
    "max-instances",
    "capacity",
    "stabilization",
    "max-step",
    "row-minimum",
    "no-metrics",
]
FACTORS: tuple[Factor, ...] = get_args(Factor)


@dataclass(frozen=True, slots=True)
class PodSample:
    """One instance's pod as the scaler sees it: is it Running, what it requested and used."""

    name: str
    running: bool  # phase Running and not being deleted
    cpu_request_m: float
    mem_request_bytes: float
    usage: PodUsage | None  # None: metrics.k8s.io has no PodMetrics for this pod


@dataclass(frozen=True, slots=True)
class MetricReading:
    """What one metric (cpu or memory) says, and why."""

    metric: str  # "cpu" | "memory"
    target_percent: float
    utilisation_percent: float | None  # average over the pods with a fresh sample
    ratio: float | None  # utilisation / target after the missing-pod adjustment
    desired: int | None  # None: no recommendation from this metric (see note)
    pods_measured: int = 0
    pods_missing: int = 0  # Running pods without a fresh sample
    pods_not_running: int = 0
    within_tolerance: bool = False
    note: str | None = None


@dataclass(frozen=True, slots=True)
class Recommendation:
    current: int
    desired: int  # == current when nothing is to change
    metrics: tuple[MetricReading, ...]
    factor: Factor | None = None  # "tolerance" or "no-metrics" when it holds the count
    note: str | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    """One scaling decision with every input, for the log, the metrics and `status`."""

    at: float  # monotonic: when it was made (the period counts from it)
    current: int  # instances now (the assignment's size)
    desired: int  # what the metrics recommend, before stabilisation and bounds
    final: int  # the instance count asked of the planner
    factor: Factor | None  # what held `final` away from `desired` (None: nothing)
    metrics: tuple[MetricReading, ...] = ()
    stabilized: int | None = None  # after the windows
    row_minimum: int = 0
    max_instances: int = 0
    fit: int | None = None  # pods that fit on the nodes (checked on scale-up only)
    pending: int = 0
    shortfall: int = 0  # instances wanted this period that the nodes cannot hold
    note: str | None = None
    limits: tuple[str, ...] = field(default=())  # every stage that changed the value, in order
    wall: float | None = None  # Unix seconds of `at`, for display only

    @property
    def changes(self) -> bool:
        return self.final != self.current

    def summary(self) -> dict[str, Any]:
        """JSON-able summary (status, REST): camelCase like the rest of `status`."""
        return {
            "at": self.wall,  # Unix seconds (`at` is monotonic: meaningless to a reader)
            "current": self.current,
            "desired": self.desired,
            "final": self.final,
            "limitedBy": self.factor,
            "shortfall": self.shortfall,
            "fit": self.fit,
            "rowMinimum": self.row_minimum,
            "maxInstances": self.max_instances,
            "note": self.note,
            "metrics": {
                m.metric: {
                    "utilisationPercent": _round(m.utilisation_percent),
                    "targetPercent": m.target_percent,
                    "desired": m.desired,
                    "pods": m.pods_measured,
                    "missing": m.pods_missing,
                    "notRunning": m.pods_not_running,
                    "note": m.note,
                }
                for m in self.metrics
            },
            "text": self.explain(),
        }

    def explain(self) -> str:
        """One line an operator reads: what was measured, what was decided, what limited it."""
        parts = []
        for m in self.metrics:
            if m.utilisation_percent is None:
                parts.append(f"{m.metric} ?/{m.target_percent:g}% ({m.note})")
            else:
                parts.append(f"{m.metric} {m.utilisation_percent:.0f}/{m.target_percent:g}%")
        measured = ", ".join(parts) or "no metrics"
        text = f"{measured}: {self.current} -> {self.final} (recommended {self.desired})"
        if self.factor:
            text += f", limited by {self.factor}"
        if self.shortfall:
            text += f", {self.shortfall} short of room on the nodes"
        if self.note:
            text += f"; {self.note}"
        return text


def limit_to_room(decision: Decision, room: Room) -> Decision:
    """Cap a scale-up at current + what fits on the nodes; the rest is the shortfall.

    Instances the row count needs are the planner's business and are never held back here.
    """
    current, wanted = decision.current, decision.final
    if wanted <= current:
        return decision
    checked = replace(decision, fit=room.fit, pending=room.pending)
    headroom = room.headroom
    if headroom is None and room.known:
        return replace(checked, note=_join(decision.note, room.note))
    # Room unknown (nodes unreadable): adding pods that may never schedule is worse than
    # waiting a period.
    allowed = max(current + (headroom or 0), decision.row_minimum)
    if wanted <= allowed:
        return checked
    return replace(
        checked,
        final=allowed,
        factor="capacity",
        shortfall=wanted - allowed,
        note=_join(decision.note, room.note),
        limits=(*decision.limits, "capacity"),
    )


def _join(a: str | None, b: str | None) -> str | None:
    return "; ".join(x for x in (a, b) if x) or None


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 1)
