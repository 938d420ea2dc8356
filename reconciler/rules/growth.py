"""The seed's growth rule: keep the layout as it is and grow it one instance at a time.

What the old orchestrator did between two orchestrations, and what the daemon does when it
takes over a running fleet: every instance keeps its ids and its `count`; ids of deleted rows
leave; a new id goes to an instance with `used < count` (the least loaded, so a few new rows
reload one or two workers); only when none has room is a new instance added (the smallest
free id, with the kind's count). Nothing is rebalanced, so no worker reloads without a
reason. Pure.

A held layout that breaks the sizing rules (fewer than initInstances or more than
maxInstances instances, a count over resourcePerInstance, or rows that would need more than
maxInstances instances of the held count) is not held: the planner re-sizes in full.

The rule is stated once, for both paths that apply it: `growth_limit` says whether the
layout is held at all and how far it may grow (the intent and the sizing rules), and `grow`
where each new id goes and when a new instance opens. `hold_layout` applies them to any
layout (the full path, O(ids)); growth_delta.py to what changed since the last plan.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping, MutableMapping
from collections.abc import Set as AbstractSet
from itertools import count as numbers
from itertools import filterfalse

from reconciler.domain.id_groups import disjoint, sorted_union
from reconciler.domain.ids import SortedIds
from reconciler.domain.model import Assignment, KindIntent
from reconciler.domain.sorted_runs import sorted_diff
from reconciler.policy.schema import KindPolicy
from reconciler.rules.sizing import size_for_layout


def growth_limit(
    policy: KindPolicy, intent: KindIntent, counts: Mapping[int, int], rows: int
) -> int | None:
    """The most instances a layout of these `counts` may grow to under the seed's rule, or
    None when it is not held and the kind is re-sized in full instead.

    Not held: an operator asked for a rebalance, the sizing policy changed, there is no
    instance yet, the layout breaks the sizing rules (initInstances to maxInstances
    instances, each count 1 to resourcePerInstance), or an autoscaling target or a pin asks
    for another instance count than the layout has. A pinned layout never grows past its
    pin; any other may grow up to maxInstances. Neither grows past the instances whose pod
    the namespace's ResourceQuota admits (`intent.pod_limit`), and a layout with more than
    that is re-sized (reconciler/rules/capacity.py `admit_sizing`).
    """
    n = len(counts)
    if intent.rebalance or intent.resize or not n:
        return None
    if not policy.init_instances <= n <= policy.max_instances or any(
        not 1 <= c <= policy.resource_per_instance for c in counts.values()
    ):
        return None
    if intent.pod_limit is not None and n > intent.pod_limit:
        return None  # instances the quota admits no pod for: re-sized (capacity.admit_sizing)
    if intent.pinned is not None:
        return intent.pinned if intent.pinned == n else None
    target = target_in_force(policy, intent)
    if target is not None and size_for_layout(rows, policy, n, target).instances != n:
        return None
    if intent.pod_limit is not None:  # an instance opens only with a pod the quota admits
        return min(policy.max_instances, intent.pod_limit)
    return policy.max_instances


def target_in_force(policy: KindPolicy, intent: KindIntent) -> int | None:
    """The autoscaler's target, while the policy still has an `autoscale` block: a target
    the daemon remembers from before the block was removed asks for nothing (the policy is
    the whole truth; the autoscaler forgets it on its next full pass)."""
    return intent.scale_target if policy.autoscale is not None else None


def fill_slack(capacity: int) -> int:
    """How far above the next least-loaded instance `fill` lets one take new ids outside a
    rebalance: a twentieth of the capacity, at least 1. Every instance that gains an id is a
    worker that reloads, so a few new rows had better land on one or two instances than one
    on each."""
    return max(1, capacity // 20)


def grow(
    held: MutableMapping[int, AbstractSet[str]],
    counts: MutableMapping[int, int],
    pool: list[str],
    limit: int,
) -> bool:
    """The seed's growth rule, its one statement: the ids no instance holds (`pool`, sorted)
    go to the least-loaded instances with room (`fill`, at the `fill_slack` of the largest
    count); what finds no room opens new instances, each at the smallest free instance id
    with the largest count, while there are fewer than `limit`.

    `held` and `counts` are grown in place. False when the pool needs more than `limit`
    instances: they are then half-grown, to be thrown away (the kind is re-sized in full,
    which reports it)."""
    if not pool:
        return True
    count = max(counts.values())
    taken = fill(held, counts, pool, fill_slack(count))
    free = (i for i in numbers() if i not in held)
    while taken < len(pool):
        if len(held) >= limit:
            return False
        i = next(free)
        held[i] = SortedIds.from_sorted(pool[taken : taken + count])
        counts[i] = count
        taken += count
    return True


def hold_layout(
    current: Assignment, rows: AbstractSet[str], limit: int
) -> tuple[dict[int, SortedIds], dict[int, int]] | None:
    """The growth rule applied to any layout (the full path): each instance's ids and
    count, growing to at most `limit` instances (`growth_limit`, which must have said the
    layout is held); None when the rows need more. An instance that neither lost nor gained
    an id keeps its own set, and so its version (SortedIds)."""
    counts = {i: inst.count for i, inst in current.items()}
    held = still_rows(current, current, rows)
    for i, ids in held.items():
        if len(ids) > counts[i]:  # over its count (a hand edit): the surplus is placed anew
            held[i] = ids - set(sorted(ids)[counts[i] :])
    if not grow(held, counts, unplaced(rows, held), limit):
        return None
    return {i: SortedIds(ids) for i, ids in held.items()}, counts


def still_rows(
    current: Assignment, keep: Iterable[int], rows: AbstractSet[str]
) -> dict[int, AbstractSet[str]]:
    """The ids of each kept instance that are still rows, in instance order; an id found
    on two instances stays on the lower one (a hand edit: the daemon's writes never make
    one). An instance that lost nothing keeps its own set: no copy, the same version."""
    held: dict[int, AbstractSet[str]] = {i: current[i].ids & rows for i in sorted(keep)}
    if not disjoint(held.values()):
        seen: set[str] = set()
        for i, ids in held.items():
            if not ids.isdisjoint(seen):
                held[i] = ids = ids - seen
            seen.update(ids)  # (`seen |= ids` would copy `seen`: ids is no builtin set)
    return held


def unplaced(rows: AbstractSet[str], held: Mapping[int, AbstractSet[str]]) -> list[str]:
    """The rows no instance holds, sorted; `held` are disjoint subsets of `rows`, so as many
    placed ids as rows means none (without a set of every placed id, which a large fleet
    would pay for in memory)."""
    placed = sum(len(ids) for ids in held.values())
    if placed == len(rows):
        return []
    if isinstance(rows, SortedIds):  # sorted already: compared with the placed ids, sorted
        if not placed:  # a first layout
            return list(rows)
        ordered = sorted_union(held.values())
        # `held` are subsets of `rows`: exactly len(rows) - placed ids differ. Few: compare
        # the two sorted lists block by block; many: a set of the placed ids is cheaper.
        if len(rows) - placed <= len(rows) // 16:
            diff = sorted_diff(list(rows), ordered)
            assert diff is not None
            return diff[0]
        return list(filterfalse(frozenset(ordered).__contains__, rows))
    if not placed:  # a first layout: no copy of the rows
        return sorted(rows)
    return sorted(rows.difference(*held.values()))


def fill(
    held: MutableMapping[int, AbstractSet[str]],
    quota: Mapping[int, int],
    pool: list[str],
    slack: int,
) -> int:
    """Give pool ids to the least-loaded instance with room.

    An instance takes ids until it is `slack` above the next least-loaded one: a small batch
    of new rows then lands on one or two instances instead of one id on each, and every
    instance that gains an id must reload (a `_reload` bump). Loads stay within `slack`.
    Returns how many ids it placed: always the first of `pool` (the rest found no room).
    """
    if slack == 1:
        return _level(held, quota, pool)
    heap = [(len(ids), i) for i, ids in held.items() if len(ids) < quota[i]]
    heapq.heapify(heap)
    taken = 0
    while taken < len(pool) and heap:
        load, i = heapq.heappop(heap)
        ceiling = min(quota[i], heap[0][0] + slack) if heap else quota[i]
        n = min(max(ceiling - load, 1), len(pool) - taken)
        ids = held[i]
        if isinstance(ids, set):
            ids.update(pool[taken : taken + n])
        else:  # an instance's own SortedIds (growth_delta.py): a new one, the old left alone
            held[i] = ids.union(pool[taken : taken + n])
        taken += n
        if load + n < quota[i]:
            heapq.heappush(heap, (load + n, i))
    # What is left has no room anywhere (over maxInstances): it stays unassigned, reported.
    return taken


def _level(
    held: MutableMapping[int, AbstractSet[str]], quota: Mapping[int, int], pool: list[str]
) -> int:
    """`fill` with a slack of 1 (a rebalance, a first layout): the loads the one-id-at-a-
    time heap would reach (everyone up to a common level, the lowest ids one above it),
    computed at once instead of one heap operation per id, which would dominate a first
    pass over a large table; each instance takes a contiguous run of the sorted pool."""
    room = {i: quota[i] - len(ids) for i, ids in held.items() if len(ids) < quota[i]}
    if not room or not pool:
        return 0
    loads = {i: len(held[i]) for i in room}

    def given(level: int) -> int:  # ids it takes to bring everyone up to `level`
        return sum(max(0, min(quota[i], level) - loads[i]) for i in room)

    low, high = min(loads.values()), max(quota[i] for i in room)
    if given(high) <= len(pool):
        level = high
    else:  # the highest level whose cost fits the pool
        while low < high:
            mid = (low + high + 1) // 2
            if given(mid) <= len(pool):
                low = mid
            else:
                high = mid - 1
        level = low
    adds = {i: max(0, min(quota[i], level) - loads[i]) for i in room}
    extra = len(pool) - sum(adds.values())
    for i in sorted(room):  # the remainder: one more each, lowest ids first
        if extra <= 0:
            break
        if loads[i] + adds[i] == level and level < quota[i]:
            adds[i] += 1
            extra -= 1
    taken = 0
    for i in sorted(room):
        if adds[i]:
            ids = held[i]
            run = pool[taken : taken + adds[i]]
            if isinstance(ids, set):
                # Made compact now, so that its growing table is let go before the next one
                # is built (the caller's SortedIds() of it is then no copy).
                # An empty one (a first layout) takes the sorted run as it is: no sort.
                if ids:
                    ids.update(run)
                    held[i] = SortedIds(ids)
                else:
                    held[i] = SortedIds.from_sorted(run)
            else:
                held[i] = ids.union(run)
            taken += adds[i]
    return taken
