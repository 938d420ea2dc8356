"""An instance's ids in the rows' own string objects: one copy of each id in memory, not two.

A daemon that wrote an assignment holds it in the strings of its rows (the planner made its
sets from them). One that read it from ZooKeeper (a standby, a daemon just started, any
daemon after a full re-read) holds a string parsed from JSON for every id beside the row's
equal one: a second copy of every id. `in_row_strings` makes the same sets of the rows'
objects, each with the same version (one content: SortedIds' contract), so the parsed
copies can go and nothing downstream sees a change.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from operator import is_not

from reconciler.domain.ids import SortedIds
from reconciler.domain.patched_ids import PatchedIds
from reconciler.domain.sorted_runs import sorted_diff

# Ids of instances that interleave with others' looked up per walk over the rows: the walk's
# table holds this many at most (one instance's ids, if more). Fewer walks cost less time,
# a larger table more memory while it lasts.
WALK_BATCH = 1 << 18
# A binary search costs about this many steps of a walk (a hash lookup each): ids fewer than
# the rows over this are searched for one by one instead.
SEARCH_STEPS = 8


def row_strings(rows: AbstractSet[str]) -> tuple[str, ...] | None:
    """The sorted tuple of `rows`' string objects to take ids from, without building one: a
    patched table's base until its whole tuple exists (the few ids patched in since stay
    as the instance has them). None: rows that are no SortedIds hold no sorted tuple."""
    if isinstance(rows, PatchedIds) and not rows.built:
        return rows._base.ordered
    return rows.ordered if isinstance(rows, SortedIds) else None


def in_row_strings(
    sets: Mapping[int, SortedIds], rows: tuple[str, ...], *, runs_only: bool = False
) -> dict[int, SortedIds]:
    """Those of `sets` (an instance's ids each) that hold other string objects than the equal
    ones of `rows` (sorted, without duplicates), re-made of the rows' with the same version.
    Ids that are no row stay as they are.

    A set that shares the rows' strings already costs a few binary searches (a converged
    pass pays nothing more); one that is a run of the rows, give or take a few, a comparison
    of blocks. Sets that interleave with others (new rows spread over the least loaded
    instances) are found in walks over the rows, each looking up `WALK_BATCH` of their ids
    at most, or by a binary search an id when they are few beside the rows; `runs_only`
    leaves them out (for a caller on a deadline, whose caller does them later)."""
    out: dict[int, SortedIds] = {}
    scattered: list[tuple[int, SortedIds]] = []
    for i, ids in sets.items():
        some = ids.ordered
        if not some or type(ids) is not SortedIds or _shares(some, rows):
            continue
        start = bisect_left(rows, some[0])
        run = rows[start : start + len(some)]
        if run == some or (run := _near_run(some, rows, start)) is not None:
            out[i] = _twin(ids, run)
        elif not runs_only:
            scattered.append((i, ids))
    if sum(len(ids) for _, ids in scattered) * SEARCH_STEPS < len(rows):
        found = {i: _searched(ids.ordered, rows) for i, ids in scattered}
    else:
        found = {}
        for batch in _batches(scattered):
            found.update(_walked(batch, rows))
    out.update((i, _twin(ids, found[i])) for i, ids in scattered if found[i] is not None)
    return out


def _twin(ids: SortedIds, ordered: tuple[str, ...]) -> SortedIds:
    """`ids` as `ordered` (equal, other string objects): the same content, so the same
    version, and whoever compares the two sees no change."""
    twin = SortedIds.from_sorted(ordered)
    twin._version, twin._parent, twin._step = ids._version, ids._parent, ids._step
    twin._hash_value = ids._hash_value
    return twin


def _shares(some: tuple[str, ...], rows: tuple[str, ...]) -> bool:
    """Whether `some` holds the rows' strings already, told by its first and last ids: the
    row of each is the very object (an id that is no row tells nothing), and one is a row."""
    found = False
    for x in (some[0], some[-1]):
        at = bisect_left(rows, x)
        if at < len(rows) and rows[at] == x:
            if rows[at] is not x:
                return False
            found = True
    return found


def _near_run(some: tuple[str, ...], rows: tuple[str, ...], start: int) -> tuple[str, ...] | None:
    """`some` in the rows' strings when the rows from its first id to its last differ from it
    by a few (rows made or deleted among an instance's since it was written): found by
    comparing blocks (sorted_runs.py), not by a search an id. None: they differ by more."""
    end, limit = bisect_right(rows, some[-1], start), len(some) // 16
    if abs(end - start - len(some)) > limit:  # more ids apart than that: no copy of the span
        return None
    span = rows[start:end]
    diff = sorted_diff(some, span, limit)
    if diff is None:
        return None
    not_rows, not_mine = diff
    unassigned = set(not_mine)
    shared = [x for x in span if x not in unassigned] if unassigned else list(span)
    return tuple(sorted(shared + not_rows) if not_rows else shared)  # two runs: a merge


def _searched(some: tuple[str, ...], rows: tuple[str, ...]) -> tuple[str, ...] | None:
    """`some` in the rows' strings by a binary search an id; None when none is a row."""
    start, end, out, taken = 0, len(rows), [], 0
    for x in some:
        start = bisect_left(rows, x, start, end)
        row = rows[start] if start < end else None
        taken += row is not x and row == x
        out.append(row if row == x else x)
    return tuple(out) if taken else None


def _batches(sets: list[tuple[int, SortedIds]]) -> list[list[tuple[int, SortedIds]]]:
    batches: list[list[tuple[int, SortedIds]]] = [[]]
    held = 0
    for i, ids in sets:
        if batches[-1] and held + len(ids) > WALK_BATCH:
            batches.append([])
            held = 0
        batches[-1].append((i, ids))
        held += len(ids)
    return batches


def _walked(
    batch: list[tuple[int, SortedIds]], rows: tuple[str, ...]
) -> dict[int, tuple[str, ...] | None]:
    """Each set of `batch` in the rows' strings, from one walk over the rows (a hash lookup
    each, in C) instead of a binary search an id; None for a set none of whose ids is a
    row."""
    owner = {x: i for i, ids in batch for x in ids.ordered}
    found: dict[int, list[str]] = {i: [] for i, _ in batch}
    for x in filter(owner.__contains__, rows):
        found[owner[x]].append(x)
    out: dict[int, tuple[str, ...] | None] = {}
    for i, ids in batch:
        got = found[i]
        if len(got) < len(ids) and got:  # ids that are no row: kept as they are, merged in
            got = sorted(got + list(set(ids.ordered).difference(got)))
        taken = any(map(is_not, got, ids.ordered))  # else: the rows' strings already
        out[i] = tuple(got) if taken else None
    return out
