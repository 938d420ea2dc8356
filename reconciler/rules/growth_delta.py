"""The growth rule applied to what changed since the last plan, not to every id again.

A row event adds or removes a few ids; re-planning the whole kind costs O(ids) (at 10k
ids ~3 ms, at a million ~0.5 s) to find that one or two instances take the new ids. When the
assignment is exactly what the last plan left (plan_memo.IdPlanMemo.followed) and the full
planner would hold the layout, the result of `growth.hold_layout` is known from the last
plan: every instance keeps its ids minus the deleted rows, and the new rows, sorted, fill
the least-loaded instances (`growth.fill`, the same function, the same order). This module
computes exactly that in O(changed ids + instances); anything it is not sure of (new
instances needed, a sizing rule broken, rows unassigned before, an autoscaling target or a
pin) is left to the full planner by returning None. Pure.
"""

from __future__ import annotations

from collections.abc import Set as AbstractSet

from reconciler.domain.ids import SortedIds
from reconciler.domain.model import Assignment, KindIntent, KindReport
from reconciler.policy.schema import KindPolicy
from reconciler.rules.growth import fill
from reconciler.rules.plan_memo import IdPlan
from reconciler.rules.write_order import instance_ops


def grow_plan(
    kind: str,
    policy: KindPolicy,
    intent: KindIntent,
    current: Assignment,
    last_rows: AbstractSet[str],
    last: IdPlan,
    rows: AbstractSet[str],
) -> IdPlan | None:
    """The held-layout plan for `rows`, from the last plan (made for `last_rows`) whose
    result `current` is; None when only the full planner can say."""
    if (
        not last.held
        or last.report.unassigned
        or last.report.error
        or intent.rebalance
        or intent.resize
        or intent.pinned is not None
        or intent.scale_target is not None
        or not current
        or not policy.init_instances <= len(current) <= policy.max_instances
    ):
        return None
    counts = dict(last.counts)
    if any(not 1 <= c <= policy.resource_per_instance for c in counts.values()):
        return None
    added = rows - last_rows if len(rows) >= len(last_rows) else None
    if added is None or len(rows) != len(last_rows) + len(added):
        removed = last_rows - rows
        added = rows - last_rows
    else:
        removed = frozenset()  # the sizes add up: nothing left
    held: dict[int, SortedIds] = {i: inst.ids for i, inst in current.items()}
    if removed:
        for i, ids in held.items():
            gone = ids & removed
            if gone:
                held[i] = ids - gone
    if added:
        fill(held, counts, sorted(added), max(1, max(counts.values()) // 20))  # type: ignore[arg-type]
        if sum(len(ids) for ids in held.values()) != len(rows):
            return None  # no room for every new row: growth adds instances (the full planner)
    changed = {i for i, ids in held.items() if ids is not current[i].ids}
    ops = instance_ops(
        kind,
        {i: current[i] for i in changed},
        {i: held[i] for i in changed},
        {i: counts[i] for i in changed},
    )
    report = KindReport(kind, len(rows), len(held), max(counts.values()), 0, 0, None, ())
    return IdPlan(held, counts, report, tuple(ops), held=True)
