"""Questions about many instances' ids at once (a layout), without a set of every id.

A hash set of every assigned id takes several times the memory of the sorted runs the
instances already hold; these functions answer from those runs instead (sorted_runs.py),
each instance's `SortedIds` read as it is, any other set sorted once.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Sequence
from collections.abc import Set as AbstractSet
from itertools import chain, islice
from operator import eq, itemgetter

from reconciler.domain.ids import SortedIds
from reconciler.domain.sorted_runs import apart


def _sorted_runs(groups: Iterable[AbstractSet[str]]) -> list[Sequence[str]]:
    """Each non-empty group as a sorted sequence, in the order of their smallest ids."""
    return sorted(
        (g.ordered if isinstance(g, SortedIds) else tuple(sorted(g)) for g in groups if g),
        key=itemgetter(0),
    )


def disjoint(groups: Iterable[AbstractSet[str]]) -> bool:
    """Whether no id is in two of `groups`, without a set of them all (a hash set takes
    several times the memory of the list this sorts): by their ranges first (a layout of
    contiguous runs of sorted ids: one comparison per group), else one sort of all of them
    (timsort merges the groups' sorted runs)."""
    runs = _sorted_runs(groups)
    if apart(runs):
        return True
    merged = list(chain.from_iterable(runs))
    merged.sort()
    return not any(map(eq, merged, islice(merged, 1, None)))


def sorted_union(groups: Iterable[AbstractSet[str]]) -> list[str]:
    """Every id of the disjoint `groups`, sorted: the runs put end to end when their ranges
    do not overlap (a layout of contiguous runs: no comparison of ids), else one sort
    (timsort merges the runs; the first case saves even that)."""
    runs = _sorted_runs(groups)
    merged = list(chain.from_iterable(runs))
    if not apart(runs):
        merged.sort()
    return merged


def held_elsewhere(holders: Iterable[AbstractSet[str]], wanted: AbstractSet[str]) -> set[str]:
    """Those of `wanted` that any of `holders` holds, without building the union of every
    holder (a hash set of every assigned id, only to look up the ids a plan moves). The
    wanted ids, sorted once, are cut to each sorted holder's range (a layout of contiguous
    runs: each wanted id falls in one or two ranges), and only those are looked for in it."""
    found: set[str] = set()
    if not wanted:
        return found
    ordered = sorted(wanted)
    for ids in holders:
        if isinstance(ids, SortedIds):
            if not ids:
                continue
            held = ids.ordered
            lo = bisect_left(ordered, held[0])
            hi = bisect_right(ordered, held[-1], lo)
            if lo == hi:
                continue
            found.update(SortedIds.from_sorted(ordered[lo:hi]) & ids)
        else:
            found.update(ids & wanted)
        if len(found) == len(wanted):
            break
    return found
