"""The order of one kind's ZooKeeper writes: never two owners.

Pure, like the planner that calls it (`reconciler.reconcile.planner`): from the assignment ZooKeeper
holds and the one the planner wants, the writes that get there such that, stopped after ANY
of them (a SIGKILL between two transactions, a failed write), no id is on two instances.
Every write of an instance that exists is made on the versions it was read with
(compare-and-set: `Instance.versions`); `reconciler.reconcile.apply` holds back a write whose ids a
failed one still holds.
"""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from dataclasses import replace

from reconciler.domain.id_groups import held_elsewhere
from reconciler.domain.ids import SortedIds
from reconciler.domain.model import Assignment, DeleteInstance, Instance, Op, Reason, WriteInstance


def instance_ops(
    kind: str,
    current: Assignment,
    final: Mapping[int, SortedIds],
    counts: Mapping[int, int],
) -> list[Op]:
    """The ZooKeeper writes from `current` to `final`, in an order that never lets two
    instances hold one id ("never two owners"), after any prefix of them:

    1. giving writes: every instance that loses ids is written first. One that also gains
       ids held elsewhere is first written with only the ids it keeps; an instance to be
       removed that still holds ids is emptied (its `_reload` bumped: the workers' signal in
       docs/contracts.md "ZooKeeper layout", so its worker lets go of them; a deleted node is
       no signal the workers are promised).
    2. taking writes: new instances, instances gaining ids (their final content), and
       writes that move no id (count changes, repairs, new rows only);
    3. deletes of the removed (by then empty) instances.

    Each write carries what it gives and takes, so apply can hold back a taking write
    whose ids a failed giving write still holds.
    """
    gains = {i: ids - current[i].ids if i in current else ids for i, ids in final.items()}
    # The gained ids some instance holds now: what a write takes from another.
    held = held_elsewhere(
        (inst.ids for inst in current.values()), set().union(*gains.values()) if current else set()
    )
    give: list[Op] = []
    take: list[Op] = []
    for i, ids in sorted(final.items()):
        old = current.get(i)
        takes = gains[i] & held
        if old is None:
            inst = Instance(i, ids, counts[i], 0)
            take.append(WriteInstance(kind, inst, True, Reason.NEW_INSTANCE, takes=takes))
            continue
        gives = old.ids - ids
        ids_changed = ids != old.ids or not old.complete
        if not ids_changed and counts[i] == old.count:
            continue
        times = old.reload_times + 1 if ids_changed else old.reload_times
        if gives and takes:
            # Loses and gains: first let go (keep only what stays), then take.
            kept = _rewrite(old, old.ids & ids, counts[i], times)
            give.append(WriteInstance(kind, kept, False, Reason.IDS_CHANGED, gives=gives))
            times += 1
            gives = frozenset()
        reason = (
            Reason.REPAIR
            if not old.complete
            else Reason.IDS_CHANGED
            if ids_changed
            else Reason.COUNT_CHANGED
        )
        inst = _rewrite(old, ids, counts[i], times)
        op = WriteInstance(kind, inst, False, reason, gives=gives, takes=takes)
        (give if gives else take).append(op)
    deletes: list[Op] = []
    for i in sorted(set(current) - set(final)):
        old = current[i]
        if old.ids:
            empty = _rewrite(old, frozenset(), old.count, old.reload_times + 1)
            give.append(WriteInstance(kind, empty, False, Reason.SCALE_DOWN, gives=old.ids))
        deletes.append(DeleteInstance(kind, i, versions=old.versions))
    return give + take + deletes


def _rewrite(old: Instance, ids: AbstractSet[str], count: int, times: int) -> Instance:
    """What a write of `old` stores: on the versions it was read with (compare-and-set);
    complete once written; the workers' session under `tmp` is theirs, never written."""
    return replace(
        old, ids=ids, count=count, reload_times=times, complete=True, worker_session=False
    )
