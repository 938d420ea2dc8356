"""Elastic scaling, pure: pod CPU/memory usage and cluster room in, an instance count out.

No clients and no clock: usage, node capacity and the time come in as arguments, so every rule
below is unit-testable without a server. `reconciler/reconcile/autoscale.py` feeds it and
applies the result. Two clocks: a sample's age (`recommend`) compares metrics-server's
timestamp with the wall clock; the windows (`stabilize`, `decide`, the history) are
intervals on the monotonic clock.

The rules follow Kubernetes' HorizontalPodAutoscaler (docs/architecture.md "Lessons kept"):

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
  what the row count needs (`sizing.size_for` with no target), and a scale-up never past what
  the schedulable nodes can still hold (`fit_on_nodes`), with the shortfall reported.

This module turns usage into a recommendation and a recommendation into a decision over the
time windows. The values it speaks in and the last stage, `limit_to_room`, are in
`scale_decision.py`; the room on the nodes is `capacity.py`'s job.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from reconciler.policy.schema import AutoscalePolicy
from reconciler.rules.scale_decision import (
    Decision,
    Factor,
    MetricReading,
    PodSample,
    Recommendation,
)

# Float noise must not add an instance: ceil(5 * 2.0000000000000004) would be 11.
_EPS = 1e-9


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
