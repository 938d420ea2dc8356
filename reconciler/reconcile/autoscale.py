"""The autoscaler: reads pod usage, node room and the namespace's quota room (through
`admission.py`), asks reconciler/rules/scaling.py, sets the kind's target.

Kinds without an `autoscale` block get their pods' CPU/memory read and exported too (at most
once a minute), so the dashboard's pod panels show every kind.

Called by the pipeline's intend stage on every full pass, before the planner. For each kind
with an `autoscale` block it decides at most once per `periodSeconds` and hands back the
instance count it wants (the kind's scale target, kept in the daemon's state as intent); the
planner then sizes to it and the
minimal-movement rebalance moves the ids. Between decisions the last target stays in force.

When the metrics cannot be read (no metrics.k8s.io, the apiserver down, stale samples) the
target is the current instance count: a missing metric never shrinks the fleet (KEDA's
lesson). Every decision that changes or limits something is logged once, with its inputs.

Time comes in as a `Moment` (the pass's instant on both clocks): the period, the stabilisation
windows and the once-a-minute usage read are intervals, measured on the monotonic clock, so a
wall-clock step neither freezes the autoscaler (a step back of an hour would otherwise hold
every decision for that hour) nor lets a window end early. The wall clock is used only to judge
a sample's age against the timestamp metrics-server wrote, and for display.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import Any, Protocol

from reconciler.domain.errors import SourceUnavailable
from reconciler.domain.model import Assignment, Moment, NodeCapacity, Pod, PodUsage, pod_name
from reconciler.domain.podspec import PodTemplate, pod_requests
from reconciler.policy.schema import AutoscalePolicy, KindPolicy
from reconciler.reconcile.admission import Admission
from reconciler.rules.capacity import Room, claim, fit_in_quota, fit_on_nodes
from reconciler.rules.scale_decision import Decision, PodSample, Recommendation, limit_to_room
from reconciler.rules.scaling import decide, prune, recommend
from reconciler.rules.sizing import size_for
from reconciler.telemetry import metrics
from reconciler.telemetry.logs import log

_DIGITS = re.compile(r"\d+")


class UsageSource(Protocol):
    """What the autoscaler reads (adapters.kube.KubePods provides all of it)."""

    templates: dict[str, PodTemplate]

    def pod_usage(self, kind: str) -> dict[str, PodUsage]: ...
    def node_capacity(self) -> list[NodeCapacity]: ...


@dataclass
class Autoscaler:
    source: UsageSource
    # kind -> (monotonic time, recommended instances), oldest first: what the windows look
    # back on.
    history: dict[str, list[tuple[float, int]]] = field(default_factory=dict)
    decisions: dict[str, Decision] = field(default_factory=dict)
    _targets: dict[str, int] = field(default_factory=dict)
    _logged: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    # When each kind without autoscale last had its pod usage read (monotonic).
    _usage_read: dict[str, float] = field(default_factory=dict)
    # The nodes as read in this pass (keyed by the pass's monotonic time), minus what kinds decided
    # earlier in the pass took: two kinds scaling up at once do not both count the same room.
    _nodes: tuple[float, list[NodeCapacity] | SourceUnavailable] | None = None
    # The namespace's ResourceQuota, read once per pass and shared with growth (None: the
    # nodes alone limit a scale-up).
    admission: Admission | None = None

    def update(
        self,
        kind: str,
        policy: KindPolicy,
        rows: AbstractSet[str] | None,
        assignment: Assignment | None,
        pods: Mapping[str, Pod] | None,
        at: Moment,
        targets: dict[str, int],
    ) -> None:
        """Decide for one kind if its period has passed; keep `targets[kind]` in step."""
        auto = policy.autoscale
        if auto is None:
            if kind in self._targets:
                self.forget(kind)
                targets.pop(kind, None)
            self._observe_usage(kind, policy, assignment, pods, at.mono)
            return
        last = self.decisions.get(kind)
        due = last is None or at.mono - last.at >= auto.period_seconds
        # Blind to rows or ZooKeeper the planner changes no count: the last target stays.
        if due and assignment is not None and rows is not None:
            decision = self._decide(kind, policy, auto, rows, assignment, pods, at)
            self.decisions[kind] = decision
            self._targets[kind] = decision.final
            self._report(kind, decision)
        if kind in self._targets:
            targets[kind] = self._targets[kind]

    def forget(self, kind: str) -> None:
        """The kind lost its autoscale block: drop its state and its metric series."""
        self.history.pop(kind, None)
        self.decisions.pop(kind, None)
        self._targets.pop(kind, None)
        self._logged.pop(kind, None)
        for gauge in (metrics.SCALE_LIMITED, metrics.POD_CPU, metrics.POD_MEMORY):
            metrics.publish(gauge, kind, {})
        with contextlib.suppress(KeyError):
            metrics.SCALE_DESIRED.remove(kind)

    def status(self, kind: str, policy: KindPolicy) -> dict[str, Any] | None:
        """The last decision, for `status` (None when the kind does not autoscale)."""
        if policy.autoscale is None:
            return None
        decision = self.decisions.get(kind)
        if decision is None:
            return {"text": "no decision yet (waits for a full pass)"}
        return {**decision.summary(), "target": self._targets.get(kind)}

    # ----------------------------------------------------------------------- internals

    def _decide(
        self,
        kind: str,
        policy: KindPolicy,
        auto: AutoscalePolicy,
        rows: AbstractSet[str],
        assignment: Assignment,
        pods: Mapping[str, Pod] | None,
        at: Moment,
    ) -> Decision:
        current = len(assignment)
        now = at.mono
        row_minimum = size_for(len(rows), policy).instances
        cpu_m, mem_b = pod_requests(self.source.templates[kind])
        samples: list[PodSample] = []
        if pods is None:
            rec = _hold(current, "pods unknown (apiserver unreachable): count kept")
        else:
            try:
                usage = self.source.pod_usage(kind)
            except SourceUnavailable as e:
                rec = _hold(current, f"pod metrics unavailable ({e}): count kept")
            else:
                samples = _samples(policy.instance_name, assignment, pods, usage, cpu_m, mem_b)
                rec = recommend(auto, current, samples, at.wall)  # ages of others' stamps
                self._publish_usage(kind, assignment, pods, usage, policy.instance_name)

        history = self.history.setdefault(kind, [])
        history.append((now, rec.desired))
        prune(history, now, max(auto.scale_up_window_seconds, auto.scale_down_window_seconds))
        decision = decide(
            auto,
            rec,
            history,
            now,
            row_minimum=row_minimum,
            max_instances=policy.max_instances,
            wall=at.wall,
        )
        if decision.final > current:
            pending = sum(not s.running for s in samples) if pods is not None else 0
            room = self._room(at.mono, cpu_m, mem_b, pending)
            decision = limit_to_room(
                decision, self._quota_room(room, policy, at.mono, cpu_m, mem_b)
            )
            if decision.final > current and self.admission is not None:
                self.admission.claim(
                    policy.namespace, at.mono, decision.final - current, cpu_m, mem_b
                )
            if decision.final > current and self._nodes is not None:
                t, nodes = self._nodes
                if not isinstance(nodes, SourceUnavailable) and (cpu_m > 0 or mem_b > 0):
                    self._nodes = (t, claim(nodes, decision.final - current, cpu_m, mem_b))
        return decision

    def _room(self, mono: float, cpu_m: float, mem_b: float, pending: int) -> Room:
        if cpu_m <= 0 and mem_b <= 0:
            return Room(None, pending, True, "the pod template requests nothing: room not checked")
        if self._nodes is None or self._nodes[0] != mono:  # read once per pass
            try:
                self._nodes = (mono, self.source.node_capacity())
            except SourceUnavailable as e:
                self._nodes = (mono, e)
        nodes = self._nodes[1]
        if isinstance(nodes, SourceUnavailable):
            return Room(None, pending, False, f"node capacity unknown ({nodes}): no scale-up")
        fit = fit_on_nodes(nodes, cpu_m, mem_b)
        schedulable = sum(n.schedulable for n in nodes)
        note = f"{fit} more fit on {schedulable} schedulable nodes"
        if pending:
            note += f", {pending} of ours not Running yet"
        return Room(fit, pending, True, note)

    def _quota_room(
        self, room: Room, policy: KindPolicy, mono: float, cpu_m: float, mem_b: float
    ) -> Room:
        """`room` on the nodes, no more than what the namespace's ResourceQuota admits. The
        kind's pods that are not Running yet count in the quota's `used` already: they take
        nothing more from it (on the nodes they do, until bound)."""
        quota = None if self.admission is None else self.admission.room(policy.namespace, mono)
        fit = None if quota is None else fit_in_quota(quota, cpu_m, mem_b)
        if quota is None or fit is None or not room.known:
            return room
        if room.headroom is not None and room.headroom <= fit:
            return room
        return Room(fit, 0, True, f"{fit} more admitted by the ResourceQuota: {quota.describe()}")

    def _observe_usage(
        self,
        kind: str,
        policy: KindPolicy,
        assignment: Assignment | None,
        pods: Mapping[str, Pod] | None,
        mono: float,
    ) -> None:
        """Pod CPU/memory for a kind that does not autoscale: exported all the same (the
        dashboard's pod panels), at most once a minute, whenever metrics.k8s.io serves it."""
        if assignment is None or pods is None or mono - self._usage_read.get(kind, -1e18) < 60:
            return
        self._usage_read[kind] = mono
        try:
            usage = self.source.pod_usage(kind)
        except SourceUnavailable:  # no metrics-server (MetricsUnavailable), or unreachable
            usage = {}
        self._publish_usage(kind, assignment, pods, usage, policy.instance_name)

    def _publish_usage(
        self,
        kind: str,
        assignment: Assignment,
        pods: Mapping[str, Pod],
        usage: Mapping[str, PodUsage],
        instance_name: str,
    ) -> None:
        cpu: dict[tuple[str, ...], float] = {}
        mem: dict[tuple[str, ...], float] = {}
        for i in assignment:
            name = pod_name(instance_name, i)
            u = usage.get(name)
            if u is not None and name in pods:
                cpu[(str(i),)] = u.cpu_millicores / 1000
                mem[(str(i),)] = u.memory_bytes
        metrics.publish(metrics.POD_CPU, kind, cpu)
        metrics.publish(metrics.POD_MEMORY, kind, mem)

    def _report(self, kind: str, d: Decision) -> None:
        metrics.SCALE_DESIRED.labels(kind).set(d.desired)
        metrics.publish(metrics.SCALE_LIMITED, kind, {(d.factor,): 1} if d.factor else {})
        if not d.changes and d.factor in (None, "tolerance"):
            self._logged.pop(kind, None)
            return
        # A decision held the same way period after period is logged once, not every period
        # (numbers in the note, such as a stale sample's age, do not make it new).
        key = (d.current, d.desired, d.final, d.factor, d.shortfall, _DIGITS.sub("#", d.note or ""))
        if self._logged.get(kind) == key:
            return
        self._logged[kind] = key
        fields: dict[str, Any] = {
            "resource": kind,
            "current": d.current,
            "desired": d.desired,
            "final": d.final,
            "limited_by": d.factor,
            "row_minimum": d.row_minimum,
            "max_instances": d.max_instances,
        }
        for m in d.metrics:
            fields[f"{m.metric}_percent"] = (
                None if m.utilisation_percent is None else round(m.utilisation_percent, 1)
            )
            fields[f"{m.metric}_target_percent"] = m.target_percent
            fields[f"{m.metric}_desired"] = m.desired
        if d.fit is not None:
            fields["fit"] = d.fit
        if d.shortfall:
            fields["shortfall"] = d.shortfall
        if d.note:
            fields["note"] = d.note
        warn = d.factor in ("no-metrics", "capacity")
        (log.warning if warn else log.info)("autoscale decision", **fields)


def _hold(current: int, why: str) -> Recommendation:
    return Recommendation(current, current, (), "no-metrics", why)


def _samples(
    instance_name: str,
    assignment: Assignment,
    pods: Mapping[str, Pod],
    usage: Mapping[str, PodUsage],
    cpu_m: float,
    mem_b: float,
) -> list[PodSample]:
    """One sample per instance: its pod (maybe missing or starting) and its usage.

    Requests come from the kind's pod template, which every managed pod is rendered from.
    """
    out: list[PodSample] = []
    for i in sorted(assignment):
        name = pod_name(instance_name, i)
        pod = pods.get(name)
        running = pod is not None and pod.phase == "Running" and not pod.terminating
        out.append(PodSample(name, running, cpu_m, mem_b, usage.get(name) if running else None))
    return out
