"""The growth rule applied to what changed since the last plan, not to every id again.

A row event adds or removes a few ids; re-planning the whole kind costs O(ids), which a
large table feels on every event, to find that one or two instances take the new ids. When
the assignment is exactly what the last plan left (plan_memo.IdPlanMemo.followed) and the
full planner would hold the layout, the result of `growth.hold_layout` is known from the
last plan: every instance keeps its ids minus the deleted rows, and the new rows, sorted,
are placed by `growth.grow`, the same statement of the rule the full path calls, with the
same limit (`growth.growth_limit`). This module computes exactly that in
O(changed ids + instances); when the last plan left rows unassigned or reported an error,
or the layout is not held, it returns None and the full planner decides. Pure.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Set as AbstractSet

from reconciler.domain.ids import SortedIds, same_ids
from reconciler.domain.model import Assignment, KindIntent, KindReport
from reconciler.domain.patched_ids import changes
from reconciler.policy.schema import KindPolicy
from reconciler.rules.growth import grow, growth_limit
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
    if not last.held or last.report.unassigned or last.report.error:
        return None
    limit = growth_limit(policy, intent, last.counts, len(rows))
    if limit is None:
        return None
    counts = dict(last.counts)
    known = changes(last_rows, rows)  # a row event's patch: no comparison of the tables
    if known is not None:
        added, removed = known
    else:
        added = rows - last_rows if len(rows) >= len(last_rows) else None
        if added is None or len(rows) != len(last_rows) + len(added):
            removed = last_rows - rows
            added = rows - last_rows
        else:
            removed = frozenset()  # the sizes add up: nothing left
    held: dict[int, AbstractSet[str]] = {i: inst.ids for i, inst in current.items()}
    if removed:
        # Each instance looks only at the deleted rows within its own range of ids: a batch
        # of deletions costs what it deletes, not its size times the instances.
        pool = sorted(removed)
        for i, ids in held.items():
            ordered = ids.ordered if isinstance(ids, SortedIds) else sorted(ids)
            if not ordered:
                continue
            lo = bisect_left(pool, ordered[0])
            hi = bisect_right(pool, ordered[-1], lo)
            gone = ids & frozenset(pool[lo:hi]) if hi > lo else None
            if gone:
                held[i] = ids - gone
    if not grow(held, counts, sorted(added), limit):
        return None  # more instances than the limit: the full planner re-sizes and reports
    # Every set here is a SortedIds already (no copy); an untouched one keeps its version.
    final = {i: SortedIds(ids) for i, ids in held.items()}
    changed = [
        i for i, ids in final.items() if i not in current or not same_ids(ids, current[i].ids)
    ]
    ops = instance_ops(
        kind,
        {i: current[i] for i in changed if i in current},
        {i: final[i] for i in changed},
        {i: counts[i] for i in changed},
    )
    report = KindReport(kind, len(rows), len(final), max(counts.values()), 0, 0, None, ())
    return IdPlan(final, counts, report, tuple(ops), held=True)
