"""What a leader would apply now: per kind, the operations the last pass over it planned and did
not carry out. One shape for `GET /v1/plan`, `reconciler plan --output json`, the gauge
`reconciler_pending_operations{resource,op}` and the log event `pending operations changed`.

Pending means planned and not done. An observe-only daemon, a standby and `reconciler plan`
apply nothing, so every operation they plan is pending: what a leader would apply now. On the
leader the operations it applied are done; those that failed, were skipped (backoff, write
order) or left by the pass budget stay pending, so a converged fleet reads 0 and a lasting
figure on the leader is something stuck.

A pass over some kinds only (a row event, a pod change) replaces those kinds' entries; the
others keep the one of the last pass that covered them.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from reconciler.domain.model import (
    AdoptPod,
    CreatePod,
    DeleteInstance,
    DeletePod,
    KindReport,
    Op,
    PassResult,
    RecreatePod,
    WriteInstance,
)
from reconciler.domain.outcomes import OutcomeResult
from reconciler.telemetry import metrics
from reconciler.telemetry.logs import log


@dataclass(frozen=True)
class KindPlan:
    """One kind's pending operations, and the pass they came from."""

    kind: str
    operations: tuple[dict[str, Any], ...]  # each as `describe` gives it, in the plan's order
    trigger: str  # what started the pass
    at: float  # when it ended, Unix seconds
    applied: bool  # the pass applied its plan (a leader's): only what it left is pending
    report: KindReport | None

    def counts(self) -> dict[str, int]:
        """Pending operations by type, every type listed (0 when none)."""
        out = dict.fromkeys(metrics.OP_TYPES, 0)
        for op in self.operations:
            out[op["op"]] = out.get(op["op"], 0) + 1
        return out

    def as_json(self) -> dict[str, Any]:
        report = self.report
        blind = list(report.blind) if report else []
        return {
            "pass": {"trigger": self.trigger, "at": self.at, "applied": self.applied},
            "blind": blind,
            "partial": bool(blind),
            "rows": report.rows if report else None,
            "instances": report.instances if report else None,
            "unassigned": report.unassigned if report else None,
            "moves": report.moved if report else None,
            "error": report.error if report else None,
            "pending": len(self.operations),
            "counts": self.counts(),
            "operations": list(self.operations),
        }


def describe(op: Op) -> dict[str, Any]:
    """An operation as JSON: its type, its reason, what it targets; counts, never id lists."""
    out: dict[str, Any] = {"op": type(op).__name__, "reason": str(op.reason)}
    if isinstance(op, WriteInstance):
        inst = op.instance
        out.update(
            instanceId=inst.instance_id,
            create=op.create,
            used=inst.used,
            count=inst.count,
            reloadTimes=inst.reload_times,
            # ids this write takes off the instance, and ids it takes from another one
            idsGiven=len(op.gives),
            idsTaken=len(op.takes),
        )
    elif isinstance(op, DeleteInstance | CreatePod):
        out["instanceId"] = op.instance_id
    elif isinstance(op, DeletePod | RecreatePod | AdoptPod):
        out.update(instanceId=op.instance_id, pod=op.pod_name, uid=op.uid or None)
    return out


def kind_plans(result: PassResult, at: float) -> dict[str, KindPlan]:
    """Each kind the pass planned for, with the operations it left pending."""
    applied = not (result.standby or result.dry_run)
    # An outcome carries the operation as applied (a write's new versions), not the planned
    # object: match them by type and target, once per success.
    done = Counter(
        _identity(o.op) for o in result.outcomes if applied and o.result is OutcomeResult.OK
    )
    pending: dict[str, list[dict[str, Any]]] = {kind: [] for kind in result.plan.reports}
    for op in result.plan.ops:
        if done[_identity(op)] > 0:
            done[_identity(op)] -= 1
        else:
            pending.setdefault(op.kind, []).append(describe(op))
    return {
        kind: KindPlan(kind, tuple(ops), result.trigger, at, applied, result.plan.reports.get(kind))
        for kind, ops in pending.items()
    }


def _identity(op: Op) -> tuple[str, str]:
    return type(op).__name__, op.key


def plan_document(
    plans: Mapping[str, KindPlan], *, role: str, sources: Mapping[str, str]
) -> dict[str, Any]:
    """`GET /v1/plan` and `reconciler plan --output json`: per kind, the pending operations.

    `role`: observe-only, leader, standby, or dry-run (`reconciler plan`); `sources`: source ->
    error for each source the daemon cannot read now (the plan is then partial)."""
    kinds = {kind: plans[kind].as_json() for kind in sorted(plans)}
    return {
        "role": role,
        "at": max((p.at for p in plans.values()), default=None),
        "partial": bool(sources) or any(k["partial"] for k in kinds.values()),
        "sources": dict(sources),
        "pending": sum(k["pending"] for k in kinds.values()),
        "kinds": kinds,
    }


class PendingPlan:
    """The daemon's pending operations per kind, kept from pass to pass (the loop records each
    pass here; REST reads it from any thread)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._plans: dict[str, KindPlan] = {}

    def record(self, result: PassResult, at: float, kinds: Iterable[str], role: str) -> None:
        """Take in a pass's plan (`kinds`: the policy's kinds; others are forgotten): set the
        gauge, and log each kind whose pending operations changed."""
        fresh = kind_plans(result, at)
        wanted = set(kinds)
        with self._lock:
            before = self._plans
            self._plans = {k: p for k, p in {**before, **fresh}.items() if k in wanted}
        for kind, plan in fresh.items():
            if kind not in wanted:
                continue
            for op, n in plan.counts().items():
                metrics.PENDING_OPERATIONS.labels(kind, op).set(n)
            was = before.get(kind)
            if plan.operations != (was.operations if was is not None else ()):
                log.info(
                    "pending operations changed",
                    resource=kind,
                    role=role,
                    pending=len(plan.operations),
                    counts={op: n for op, n in plan.counts().items() if n},
                    trigger=result.trigger,
                )

    def plans(self) -> dict[str, KindPlan]:
        with self._lock:
            return dict(self._plans)
