"""The last id plan of each kind, reused while its inputs are unchanged.

Planning ids is O(ids): on a large converged fleet, set algebra on every pass only to find
that nothing is to be done. The caches under the pass
(reconciler/adapters/zookeeper/cache.py, reconciler/adapters/sql/rows_cache.py) hand back
the same sets while nothing changed, so "same inputs" is a comparison of versions here
(`SortedIds.version`, whose docstring states the contract), not of a million strings. Rows
that are not a SortedIds carry no version and are never taken as unchanged. The pods and
heartbeats are planned on every pass regardless: they are small and change all the time.

Pure: no I/O; a cache, never a source.
"""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass

from reconciler.domain.ids import SortedIds, same_ids
from reconciler.domain.model import Assignment, Instance, KindIntent, KindReport, Op
from reconciler.policy.schema import KindPolicy


@dataclass(frozen=True, slots=True)
class IdPlan:
    """The id half of a kind's plan: each instance's ids and count, the ZooKeeper writes."""

    final: Mapping[int, SortedIds]
    counts: Mapping[int, int]
    report: KindReport
    ops: tuple[Op, ...]
    # The next plan would hold this layout as it is (growth.py): it may start from it.
    held: bool = False


@dataclass(frozen=True, slots=True)
class _Entry:
    policy: KindPolicy
    intent: KindIntent
    rows: AbstractSet[str] | None
    current: tuple[tuple[int, Instance], ...]
    plan: IdPlan


def _same_instance(a: Instance, b: Instance) -> bool:
    """Unchanged for the plan: the same ids by version, and every other field equal (the
    ZooKeeper versions too: a write is a compare-and-set on them)."""
    return (
        same_ids(a.ids, b.ids)
        and a.count == b.count
        and a.reload_times == b.reload_times
        and a.complete == b.complete
        and a.worker_session == b.worker_session
        and a.versions == b.versions
    )


def _same_rows(a: AbstractSet[str] | None, b: AbstractSet[str] | None) -> bool:
    """Both unreadable, or the same rows by version."""
    return (a is None and b is None) or same_ids(a, b)


class IdPlanMemo:
    """Per kind, the last `IdPlan` and what it was planned from."""

    def __init__(self) -> None:
        self._last: dict[str, _Entry] = {}
        self.hits = 0  # plans reused (tests and benchmarks look)
        self.grown = 0  # plans made from the last one (growth_delta.py)

    def lookup(
        self,
        kind: str,
        policy: KindPolicy,
        intent: KindIntent,
        rows: AbstractSet[str] | None,
        current: Assignment,
    ) -> IdPlan | None:
        entry = self._last.get(kind)
        if (
            entry is None
            or not _same_rows(entry.rows, rows)
            or len(entry.current) != len(current)
            or entry.policy != policy
            or entry.intent != intent
        ):
            return None
        for i, inst in entry.current:
            now = current.get(i)
            if now is None or not _same_instance(inst, now):
                return None
        self.hits += 1
        return entry.plan

    def followed(
        self, kind: str, policy: KindPolicy, intent: KindIntent, current: Assignment
    ) -> tuple[AbstractSet[str], IdPlan] | None:
        """The last plan and the rows it was made for, if `current` is exactly what that
        plan left (every instance holding the set the plan gave it, by version, at its
        count): the next plan can then start from it (growth_delta.py)."""
        entry = self._last.get(kind)
        if (
            entry is None
            or entry.rows is None
            or entry.policy != policy
            or entry.intent != intent
            or current.keys() != entry.plan.final.keys()
        ):
            return None
        for i, ids in entry.plan.final.items():
            inst = current[i]
            if (
                not same_ids(inst.ids, ids)
                or inst.count != entry.plan.counts[i]
                or not inst.complete
            ):
                return None
        return entry.rows, entry.plan

    def store(
        self,
        kind: str,
        policy: KindPolicy,
        intent: KindIntent,
        rows: AbstractSet[str] | None,
        current: Assignment,
        plan: IdPlan,
    ) -> None:
        self._last[kind] = _Entry(policy, intent, rows, tuple(sorted(current.items())), plan)

    def forget(self, kind: str | None = None) -> None:
        if kind is None:
            self._last.clear()
        else:
            self._last.pop(kind, None)
