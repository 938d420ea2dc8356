"""The planner: observed world + policy in, the minimal list of operations out.

Pure: no clients, no clock (time comes in `Observed.now`), no logging. The periodic tick and
the event fast path both call `plan()`; there is no second assignment algorithm.

Assignment is sticky (docs/architecture.md "Sticky assignment"): an id stays on its instance
unless it must move. Ids of deleted rows leave; ids of removed instances and ids above an
instance's quota go to a pool; pool ids go to the least-loaded instance with room. Only a
change of the instance count or an explicit rebalance evens the load out, and then only ids
on the fullest instances move.
"""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from dataclasses import replace

from reconciler.domain.id_groups import held_elsewhere
from reconciler.domain.ids import SortedIds, same_ids
from reconciler.domain.model import (
    DEAD_PHASES,
    NO_INTENT,
    AdoptPod,
    Assignment,
    CreatePod,
    DeletePod,
    KindIntent,
    KindObserved,
    KindReport,
    Observed,
    Op,
    Plan,
    Pod,
    Reason,
    RecreatePod,
    pod_name,
)
from reconciler.policy.schema import KindPolicy
from reconciler.rules.capacity import admit_sizing
from reconciler.rules.growth import (
    fill,
    fill_slack,
    growth_limit,
    hold_layout,
    still_rows,
    target_in_force,
    unplaced,
)
from reconciler.rules.growth_delta import grow_plan
from reconciler.rules.plan_memo import IdPlan, IdPlanMemo
from reconciler.rules.rollout import roll
from reconciler.rules.silence import silent_instances
from reconciler.rules.sizing import size_for as size_for  # re-exported: api/orchestrations.py
from reconciler.rules.sizing import size_for_layout
from reconciler.rules.write_order import instance_ops


def plan(
    policies: Mapping[str, KindPolicy],
    observed: Observed,
    intents: Mapping[str, KindIntent] | None = None,
    memo: IdPlanMemo | None = None,
) -> Plan:
    """The operations that make every kind of `observed` match its policy and intent.
    `memo`: reuse a kind's id plan while its inputs are unchanged (by version:
    reconciler/rules/plan_memo.py)."""
    ops: list[Op] = []
    reports: dict[str, KindReport] = {}
    for kind, policy in policies.items():
        obs = observed.kinds.get(kind)
        if obs is None:
            continue
        intent = (intents or {}).get(kind, NO_INTENT)
        kind_ops, reports[kind] = plan_kind(policy, obs, observed.now, intent, memo)
        ops.extend(kind_ops)
    return Plan(tuple(ops), reports)


def plan_kind(
    policy: KindPolicy,
    obs: KindObserved,
    now: float,
    intent: KindIntent = NO_INTENT,
    memo: IdPlanMemo | None = None,
) -> tuple[list[Op], KindReport]:
    kind = obs.kind
    if obs.assignment is None:
        # Without the current assignment we know neither the instances nor their pods:
        # doing nothing is the only safe plan.
        blind = _blind(obs)
        return [], KindReport(kind, _len(obs.row_ids), 0, 0, 0, 0, None, blind)
    current = obs.assignment
    ids = memo.lookup(kind, policy, intent, obs.row_ids, current) if memo else None
    if ids is None:
        last = memo.followed(kind, policy, intent, current) if memo else None
        if last is not None and obs.row_ids is not None:
            ids = grow_plan(kind, policy, intent, current, last[0], last[1], obs.row_ids)
            memo.grown += ids is not None
        if ids is None:
            ids = plan_ids(policy, obs, intent)
        if memo is not None:
            memo.store(kind, policy, intent, obs.row_ids, current, ids)
    ops = list(ids.ops)
    hb_note, silent = silent_instances(
        policy.heartbeat, obs.heartbeats, obs.pods, ids.final, now, policy.instance_name, current
    )
    report = replace(ids.report, blind=_blind(obs), heartbeat_note=hb_note)
    if obs.pods is not None:
        ops.extend(_pod_ops(kind, policy.instance_name, ids.final, obs.pods, silent))
        ops.extend(
            roll(kind, policy.instance_name, ids.final, obs.pods, intent, obs.heartbeats, ops)
        )
    return ops, report


def _blind(obs: KindObserved) -> tuple[str, ...]:
    return tuple(
        name
        for name, value in (
            ("rows", obs.row_ids),
            ("zookeeper", obs.assignment),
            ("pods", obs.pods),
        )
        if value is None
    )


def plan_ids(policy: KindPolicy, obs: KindObserved, intent: KindIntent) -> IdPlan:
    """Each instance's ids and count, and the ZooKeeper writes to get there (the pods are
    `plan_kind`'s): O(ids), hence memoised. `obs.assignment` must be known."""
    kind = obs.kind
    current = obs.assignment
    assert current is not None
    if obs.row_ids is None:
        # The database is unreadable: keep every id where it is, look after the pods only.
        final = {i: inst.ids for i, inst in current.items()}
        capacity = max((inst.count for inst in current.values()), default=0)
        report = KindReport(kind, None, len(final), capacity, 0, 0, None, ())
        return IdPlan(final, {i: inst.count for i, inst in current.items()}, report, ())
    if (held := _held(policy, obs, intent)) is not None:
        # The layout as it is (the old orchestrator's, or ours): new rows fill instances with
        # room, else new instances are added; counts stay. The seed's growth rule
        # (docs/contracts.md "Sizing").
        final, counts = _same_sets(current, held[0]), held[1]
        report = KindReport(
            kind,
            len(obs.row_ids),
            len(final),
            max(counts.values(), default=0),
            0,
            moved_ids(current, final),
            None,
            (),
        )
        ops = tuple(instance_ops(kind, current, final, counts))
        return IdPlan(final, counts, report, ops, held=True)
    target = target_in_force(policy, intent)
    sizing = size_for_layout(len(obs.row_ids), policy, len(current), target, intent.pinned)
    sizing = admit_sizing(sizing, policy, intent.pod_limit, len(obs.row_ids))  # the quota
    keep, new = choose_instances(current, sizing.instances)
    rebalance = intent.rebalance or len(keep) + len(new) != len(current)
    capacity = sizing.capacity
    same_size = not new and len(keep) == len(current)
    if same_size and sizing.error is None and sizing.instances != sizing.needed:
        # Above the row-count minimum any capacity up to resourcePerInstance fits every
        # row; keeping the current one means deleted rows never push other ids around, and
        # a re-size at the same count never takes back the room a scale-down left
        # (rules/sizing.py `size_for_layout`).
        held_count = max((current[i].count for i in keep), default=0)
        capacity = max(capacity, min(held_count, policy.resource_per_instance))
    final = _same_sets(current, assign(current, keep, new, obs.row_ids, capacity, rebalance))
    unassigned = len(obs.row_ids) - sum(len(ids) for ids in final.values())
    if intent.pinned == 0:
        unassigned = 0  # stopped: no id is meant to be served, none is missing a worker
    counts = dict.fromkeys(final, capacity)
    report = KindReport(
        kind,
        len(obs.row_ids),
        len(final),
        capacity,
        unassigned,
        moved_ids(current, final),
        sizing.error,
        (),
    )
    ops = tuple(instance_ops(kind, current, final, counts))
    # Every row placed within the rules: the next plan may start from this one
    # (reconciler/rules/growth_delta.py) instead of re-reading every id, wherever
    # `growth.growth_limit` holds the layout.
    holdable = sizing.error is None and unassigned == 0
    return IdPlan(final, counts, report, ops, held=holdable)


def _same_sets(current: Assignment, final: dict[int, SortedIds]) -> dict[int, SortedIds]:
    """`final`, with the current instance's own set wherever it is unchanged: the memo and
    the next plan (reconciler/rules/plan_memo.py, reconciler/rules/growth_delta.py) tell
    "unchanged" by its version (SortedIds), which an equal set built anew does not carry."""
    for i, ids in final.items():
        old = current.get(i)
        if (
            old is not None
            and not same_ids(old.ids, ids)
            and len(old.ids) == len(ids)
            and old.ids == ids
        ):
            final[i] = old.ids
    return final


def _held(
    policy: KindPolicy, obs: KindObserved, intent: KindIntent
) -> tuple[dict[int, SortedIds], dict[int, int]] | None:
    """The held layout grown by the seed's rule, unless a full re-sizing is due
    (`growth.growth_limit` says when, for this path and the delta path alike)."""
    current, rows = obs.assignment, obs.row_ids
    if not current or rows is None:
        return None
    counts = {i: inst.count for i, inst in current.items()}
    limit = growth_limit(policy, intent, counts, len(rows))
    return None if limit is None else hold_layout(current, rows, limit)


def choose_instances(current: Assignment, instances: int) -> tuple[list[int], list[int]]:
    """Which existing instance ids to keep and which new ones to create.

    Scale-down removes the highest ids; scale-up takes the smallest unused integers
    (docs/contracts.md "ZooKeeper layout").
    """
    keep = sorted(current)[:instances]
    new: list[int] = []
    candidate = 0
    taken = set(keep)
    while len(keep) + len(new) < instances:
        if candidate not in taken:
            new.append(candidate)
        candidate += 1
    return keep, new


def assign(
    current: Assignment,
    keep: list[int],
    new: list[int],
    rows: AbstractSet[str],
    capacity: int,
    rebalance: bool,
) -> dict[int, SortedIds]:
    """The new id set of every instance, moving as few ids as the rules allow."""
    held: dict[int, AbstractSet[str]] = still_rows(current, keep, rows)
    for i in new:
        held[i] = set()

    quota = _quotas(held, len(rows), capacity) if rebalance else dict.fromkeys(held, capacity)
    for i, ids in held.items():
        if len(ids) > quota[i]:
            # Deterministic choice of what leaves: the largest ids, so that a replan on the
            # same input is identical.
            held[i] = ids - set(sorted(ids)[quota[i] :])

    pool = unplaced(rows, held)
    # A rebalance evens loads exactly (the quotas); otherwise the growth rule's slack.
    fill(held, quota, pool, slack=1 if rebalance else fill_slack(capacity))
    return _frozen(held)


def _frozen(held: dict[int, set[str]] | dict[int, AbstractSet[str]]) -> dict[int, SortedIds]:
    """Each instance's set, made a SortedIds one at a time, each mutable one let go at once,
    so the peak never holds every mutable set beside its frozen copy."""
    final: dict[int, SortedIds] = {}
    for i in list(held):
        final[i] = SortedIds(held.pop(i))
    return final


def _quotas(held: Mapping[int, AbstractSet[str]], rows: int, capacity: int) -> dict[int, int]:
    """Per-instance targets within one id of the mean, the fullest keeping the larger share."""
    k = len(held)
    if k == 0:
        return {}
    low, extra = divmod(rows, k)
    if low + (1 if extra else 0) > capacity:  # over maxInstances: everyone full
        return dict.fromkeys(held, capacity)
    by_load = sorted(held, key=lambda i: (-len(held[i]), i))
    return {i: low + (1 if rank < extra else 0) for rank, i in enumerate(by_load)}


def moved_ids(current: Assignment, final: Mapping[int, SortedIds]) -> int:
    """Ids that were on one instance and are now on another."""
    gained = {
        i: ids - current[i].ids if i in current else ids
        for i, ids in final.items()
        if i not in current or ids != current[i].ids
    }
    if not current or not any(gained.values()):
        return 0  # (a first layout moves nothing)
    wanted = set().union(*gained.values())
    before = held_elsewhere((inst.ids for inst in current.values()), wanted)
    return sum(len(ids & before) for ids in gained.values())


def _pod_ops(
    kind: str,
    instance_name: str,
    final: Mapping[int, SortedIds],
    pods: Mapping[str, Pod],
    silent: set[int],
) -> list[Op]:
    ops: list[Op] = []
    for i in sorted(final):
        name = pod_name(instance_name, i)
        pod = pods.get(name)
        if pod is None:
            ops.append(CreatePod(kind, i))
        elif pod.terminating:
            continue  # its deletion is under way; create it again once it is gone
        elif not pod.labelled and pod.phase not in DEAD_PHASES:
            # A live pod the old orchestrator made: ours by its name; kept, labelled.
            ops.append(AdoptPod(kind, name, i, pod.uid))
            if i in silent:
                ops.append(RecreatePod(kind, name, i, Reason.HEARTBEAT_SILENT, pod.uid))
        elif pod.phase in DEAD_PHASES:
            ops.append(RecreatePod(kind, name, i, Reason.POD_DEAD, pod.uid))
        elif i in silent:
            ops.append(RecreatePod(kind, name, i, Reason.HEARTBEAT_SILENT, pod.uid))
    expected = {pod_name(instance_name, i) for i in final}
    for name, pod in sorted(pods.items()):
        if name not in expected and not pod.terminating:
            reason = Reason.SCALE_DOWN if pod.instance_id is not None else Reason.ORPHAN
            ops.append(DeletePod(kind, name, pod.instance_id, reason, pod.uid))
    return ops


def _len(ids: AbstractSet[str] | None) -> int | None:
    return None if ids is None else len(ids)
