"""Elastic scaling, pure: pod CPU/memory usage and cluster room in, an instance count out.

No clients and no clock: usage, node capacity and the time come in as arguments, so every rule
below is unit-testable without a server. `autoscale.py` feeds it and applies the result. Two
clocks: a sample's age (`recommend`) compares metrics-server's timestamp with the wall clock;
the windows (`stabilize`, `decide`, the history) are intervals on the monotonic clock.

The rules follow Kubernetes' HorizontalPodAutoscaler (DESIGN.md, "Lessons"):

- per metric, utilisation = the pods' usage / their requests, and
  desired = ceil(current x utilisation / target); the larger metric wins;
- |utilisation / target - 1| <= tolerance: no change;
- a metric with no fresh samples gives no recommendation, and says why; when one metric is
  missing, the others may scale up but never down (a missing metric is no evidence of idleness:
  KEDA's lesson);
- pods that are not Running are left out of the average; like HPA they count as idle when the
  average asks for more (their load is not known yet), and Running pods without a fresh sample
  count as idle when scaling up and as exactly at target when scaling down, so a gap in the
  metrics never makes a step bigger than the measured pods justify;
- stabilisation: a scale-down only once every recommendation over the down window was lower
  (the largest of them wins), a scale-up once every one over the up window was higher (the
  smallest wins);
- then bounds and rate: never above maxInstances, at most `maxStep` per decision, never below
  what the row count needs (`planner.size_for` with no target), and a scale-up never past what
  the schedulable nodes can still hold (`fit_on_nodes`), with the shortfall reported.

This module turns usage into a recommendation and a recommendation into a decision over the
time windows; the room on the nodes (`Room`, `fit_on_nodes`, `claim`, `limit_to_room`) is
`capacity.py`'s job, re-exported here so callers need one import.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal, get_args

from reconciler.domain.model import PodUsage
from reconciler.policy.schema import AutoscalePolicy

# Re-exported (the `X as X` form): autoscale.py and the tests import them from here.
from reconciler.rules.capacity import Room as Room
from reconciler.rules.capacity import claim as claim
from reconciler.rules.capacity import fit_on_nodes as fit_on_nodes
from reconciler.rules.capacity import limit_to_room as limit_to_room

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

# Float noise must not add an instance: ceil(5 * 2.0000000000000004) would be 11.
_EPS = 1e-9


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


# --------------------------------------------------------------------------- recommend


def recommend(
    policy: AutoscalePolicy, current: int, pods: Sequence[PodSample], now: float
) -> Recommendation:
    """The metrics' recommendation (sample ages against `now`, wall time), before windows."""
    readings: list[MetricReading] = []
    if policy.cpu_target_percent is not None:
        readings.append(
            _reading(
                "cpu",
                policy.cpu_target_percent,
                policy,
                current,
                pods,
                now,
                lambda p: p.cpu_request_m,
                lambda u: u.cpu_millicores,
            )
        )
    if policy.memory_target_percent is not None:
        readings.append(
            _reading(
                "memory",
                policy.memory_target_percent,
                policy,
                current,
                pods,
                now,
                lambda p: p.mem_request_bytes,
                lambda u: u.memory_bytes,
            )
        )
    metrics = tuple(readings)
    usable = [m for m in metrics if m.desired is not None]
    missing = [m for m in metrics if m.desired is None]
    if not usable:
        why = "; ".join(f"{m.metric}: {m.note}" for m in missing)
        return Recommendation(current, current, metrics, "no-metrics", f"no action: {why}")
    desired = max(m.desired for m in usable if m.desired is not None)
    if missing and desired < current:
        why = "; ".join(f"{m.metric}: {m.note}" for m in missing)
        return Recommendation(current, current, metrics, "no-metrics", f"no scale-down while {why}")
    if desired == current and all(m.within_tolerance for m in usable):
        return Recommendation(current, current, metrics, "tolerance")
    return Recommendation(current, desired, metrics)


def _reading(
    metric: str,
    target: float,
    policy: AutoscalePolicy,
    current: int,
    pods: Sequence[PodSample],
    now: float,
    request: Any,
    used: Any,
) -> MetricReading:
    running = [p for p in pods if p.running]
    not_running = [p for p in pods if not p.running]
    fresh = [
        p
        for p in running
        if p.usage is not None and now - p.usage.timestamp <= policy.metrics_max_age_seconds
    ]
    missing = [p for p in running if p not in fresh]
    base = MetricReading(
        metric,
        target,
        None,
        None,
        None,
        len(fresh),
        len(missing),
        len(not_running),
    )
    if not fresh:
        if not running:
            note = "no Running pods"
        elif all(p.usage is None for p in running):
            note = f"no pod metrics for {len(running)} Running pods"
        else:
            newest = max(p.usage.timestamp for p in running if p.usage is not None)
            note = (
                f"pod metrics stale ({now - newest:.0f}s old, "
                f"max {policy.metrics_max_age_seconds:g}s)"
            )
        return replace(base, note=note)
    requested = sum(request(p) for p in fresh)
    if requested <= 0:
        return replace(base, note=f"pods request no {metric}: utilisation undefined")
    usage = sum(used(p.usage) for p in fresh)
    utilisation = usage / requested * 100
    ratio = utilisation / target
    note = None
    if ratio > 1 and (missing or not_running):
        # Scaling up: pods without a sample, and pods still starting, count as idle.
        extra = sum(request(p) for p in (*missing, *not_running))
        ratio = usage / (requested + extra) * 100 / target
        note = _gap_note(missing, not_running, "idle")
    elif ratio < 1 and missing:
        # Scaling down: Running pods without a sample count as exactly at target.
        extra = sum(request(p) for p in missing)
        ratio = (usage + extra * target / 100) / (requested + extra) * 100 / target
        note = _gap_note(missing, [], "at target")
    reading = replace(base, utilisation_percent=utilisation, ratio=ratio, note=note)
    flipped = (ratio - 1) * (utilisation / target - 1) < 0
    if abs(ratio - 1) <= policy.tolerance or flipped:
        return replace(reading, desired=current, within_tolerance=True)
    return replace(reading, desired=max(0, math.ceil(current * ratio - _EPS)))


def _gap_note(missing: Sequence[PodSample], not_running: Sequence[PodSample], as_: str) -> str:
    parts = []
    if missing:
        parts.append(f"{len(missing)} without fresh metrics")
    if not_running:
        parts.append(f"{len(not_running)} not Running")
    return f"{' and '.join(parts)} counted as {as_}"


# --------------------------------------------------------------------------- windows


def stabilize(
    history: Sequence[tuple[float, int]],
    now: float,
    up_window: float,
    down_window: float,
    *,
    current: int,
) -> int:
    """HPA's stabilisation: the count the recommendations (time, desired) allow now.

    A scale-down goes no lower than the highest recommendation in force at any moment of the
    down window; a scale-up no higher than the lowest one over the up window. A
    recommendation is in force from its time until the next one, so the last one made before
    the window opened counts too; when none was (the daemon has not watched the whole window
    yet) that direction is not allowed at all.
    """
    if not history:
        return current
    up = _over_window(history, now - up_window, min)
    down = _over_window(history, now - down_window, max)
    result = current
    if up is not None and result < up:
        result = up
    if down is not None and result > down:
        result = down
    return result


def _over_window(history: Sequence[tuple[float, int]], cutoff: float, pick: Any) -> int | None:
    """max/min of the recommendations in force since `cutoff`; None if not watched that long."""
    before = [(t, r) for t, r in history if t <= cutoff]
    inside = [r for t, r in history if t > cutoff]
    if not before:
        return None
    return pick([max(before)[1], *inside])


def prune(history: list[tuple[float, int]], now: float, keep_seconds: float) -> None:
    """Drop entries no window needs: keep the last `keep_seconds` plus the one before them."""
    cutoff = now - keep_seconds
    older = [i for i, (t, _) in enumerate(history) if t <= cutoff]
    if len(older) > 1:
        del history[: older[-1]]


# --------------------------------------------------------------------------- decide


def decide(
    policy: AutoscalePolicy,
    rec: Recommendation,
    history: Sequence[tuple[float, int]],
    now: float,
    *,
    row_minimum: int,
    max_instances: int,
    wall: float | None = None,
) -> Decision:
    """Windows, bounds and step applied to a recommendation (`history` includes it). `now`
    and the history's times are monotonic; `wall` (Unix seconds) is kept for display.

    Scale-up room is checked afterwards with `limit_to_room`, only when the decision adds
    instances (reading every node and pod of the cluster is not free).
    """
    current = rec.current
    value, factor = rec.desired, rec.factor
    limits: list[str] = [factor] if factor else []

    def stage(new: int, name: Factor) -> None:
        nonlocal value, factor
        if new != value:
            value, factor = new, name
            limits.append(name)

    stage(
        stabilize(
            history,
            now,
            policy.scale_up_window_seconds,
            policy.scale_down_window_seconds,
            current=current,
        ),
        "stabilization",
    )
    stabilized = value
    stage(max(current - policy.max_step, min(current + policy.max_step, value)), "max-step")
    # After the step: a lowered maxInstances binds at once (the planner enforces it anyway).
    stage(min(value, max_instances), "max-instances")
    stage(max(value, row_minimum), "row-minimum")
    return Decision(
        at=now,
        current=current,
        desired=rec.desired,
        final=value,
        factor=factor,
        metrics=rec.metrics,
        stabilized=stabilized,
        row_minimum=row_minimum,
        max_instances=max_instances,
        note=rec.note,
        limits=tuple(limits),
        wall=wall,
    )


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 1)
