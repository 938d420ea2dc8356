"""Elastic scaling, pure: pod CPU/memory usage and cluster room in, an instance count out.

No clients and no clock: usage, node capacity and `now` come in as arguments, so every rule
below is unit-testable without a server. `autoscale.py` feeds it and applies the result.

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
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal, get_args

from reconciler.model import NodeCapacity, PodUsage
from reconciler.policy import AutoscalePolicy

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
class Room:
    """How many more pods of the kind the nodes can hold now.

    `fit` None with `known` True: nothing to check (the template requests nothing); with
    `known` False the nodes could not be read, and no pod is added on a guess.
    """

    fit: int | None  # pods that fit on the schedulable nodes
    pending: int = 0  # the kind's instances whose pod is not Running yet: they take room first
    known: bool = True
    note: str | None = None

    @property
    def headroom(self) -> int | None:
        return None if self.fit is None else max(0, self.fit - self.pending)


@dataclass(frozen=True, slots=True)
class Decision:
    """One scaling decision with every input, for the log, the metrics and `status`."""

    at: float
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

    @property
    def changes(self) -> bool:
        return self.final != self.current

    def summary(self) -> dict[str, Any]:
        """JSON-able summary (status, REST): camelCase like the rest of `status`."""
        return {
            "at": self.at,
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
    """The metrics' recommendation for the instance count, before windows and bounds."""
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


# --------------------------------------------------------------------------- capacity


def fit_on_nodes(nodes: Sequence[NodeCapacity], pod_cpu_m: float, pod_mem_bytes: float) -> int:
    """Pods of this size the schedulable nodes can still hold (SPEC.md's capacity check).

    Sum over schedulable nodes of floor(min(free CPU / pod CPU, free memory / pod memory)),
    free = allocatable - the requests of the pods already bound there. A zero request does
    not limit that dimension; a pod requesting nothing at all is not something this check
    can size (ValueError).
    """
    if pod_cpu_m <= 0 and pod_mem_bytes <= 0:
        raise ValueError("the pod requests neither CPU nor memory: nothing to fit")
    total = 0
    for n in nodes:
        if not n.schedulable:
            continue
        fits = []
        if pod_cpu_m > 0:
            fits.append(max(0.0, n.allocatable_cpu_m - n.requested_cpu_m) / pod_cpu_m)
        if pod_mem_bytes > 0:
            fits.append(max(0.0, n.allocatable_mem_bytes - n.requested_mem_bytes) / pod_mem_bytes)
        total += math.floor(min(fits) + _EPS)
    return total


def claim(
    nodes: Sequence[NodeCapacity], pods: int, pod_cpu_m: float, pod_mem_bytes: float
) -> list[NodeCapacity]:
    """The nodes after placing `pods` more pods (first fit, as many per node as hold).

    Used to let a second kind scaling up in the same pass see the room the first one took.
    """
    out: list[NodeCapacity] = []
    left = pods
    for n in nodes:
        if left > 0 and n.schedulable:
            here = min(left, fit_on_nodes([n], pod_cpu_m, pod_mem_bytes))
            left -= here
            n = replace(
                n,
                requested_cpu_m=n.requested_cpu_m + here * pod_cpu_m,
                requested_mem_bytes=n.requested_mem_bytes + here * pod_mem_bytes,
            )
        out.append(n)
    return out


# --------------------------------------------------------------------------- decide


def decide(
    policy: AutoscalePolicy,
    rec: Recommendation,
    history: Sequence[tuple[float, int]],
    now: float,
    *,
    row_minimum: int,
    max_instances: int,
) -> Decision:
    """Windows, bounds and step applied to a recommendation (`history` includes it).

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
    )


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
