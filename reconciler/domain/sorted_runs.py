"""Algorithms on sorted runs of ids (tuples or lists sorted, without duplicates).

What `SortedIds` (ids.py) and the layout-wide questions (id_groups.py) are built on: two
sorted sequences compared block by block instead of id by id, a few ids found by binary
search, pieces of a tuple joined. Nothing here knows the set type; everything takes and
returns plain sequences.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Sequence, Sized
from itertools import chain, pairwise


def few(other: Sized, ids: Sized) -> bool:
    """Whether looking each of `other` up in `ids` (a binary search in Python, an order of
    magnitude dearer than a hash lookup in C) is cheaper than looking each of `ids` up in
    `other`."""
    return len(other) * 16 < len(ids)


def joined(pieces: list[tuple[str, ...]]) -> tuple[str, ...]:
    """The pieces as one tuple. Every copy of a table's ids touches each string (its
    reference count), which a large table feels: a few pieces are added up (two passes),
    many chained."""
    if len(pieces) <= 3:
        return sum(pieces, ())
    return tuple(chain.from_iterable(pieces))


def found_in(some: tuple[str, ...], ids: tuple[str, ...]) -> list[str]:
    """Those of the sorted `some` that the sorted `ids` hold. A run of `ids` equal to `some`
    (an instance made of consecutive rows) is found by one comparison; a run that differs
    from `some` by a few ids (rows created or deleted among the instance's since) by block
    comparison (`sorted_diff`); else one binary search each, from where the last ended."""
    if not some:
        return []
    start = bisect_left(ids, some[0])
    if ids[start : start + len(some)] == some:
        return list(some)
    span = ids[start : bisect_right(ids, some[-1], start)]
    diff = sorted_diff(some, span, len(some) // 16)
    if diff is not None:
        if not diff[0]:
            return list(some)
        missing = set(diff[0])
        return [x for x in some if x not in missing]
    found: list[str] = []
    end = len(ids)
    for x in some:
        start = bisect_left(ids, x, start, end)
        if start == end:
            break
        if ids[start] == x:
            found.append(x)
    return found


# Equal runs of two sorted sequences are skipped by comparing blocks (one C comparison
# each): after a difference the first block is _FIRST_BLOCK ids, doubling while equal up to
# _MAX_BLOCK (galloping), so dense differences (a burst of rows among an instance's) cost a
# few small comparisons each and sparse ones (two reads of a table) a few large ones.
_FIRST_BLOCK = 4
_MAX_BLOCK = 1024


def sorted_diff(
    a: Sequence[str], b: Sequence[str], limit: int | None = None
) -> tuple[list[str], list[str]] | None:
    """(ids only in `a`, ids only in `b`) of two sorted sequences without duplicates, found
    by comparing blocks of both (two reads of a large table that differ by a few rows: a
    few comparisons and no set of either); None once more than `limit` ids differ (sets do
    better).
    Sizes further apart than `limit` differ by more ids than that (an instance's ids
    against a table's rows, a table that took a burst of rows): None at once, before
    stepping through a limit's worth of differences in Python."""
    i = j = 0
    na, nb = len(a), len(b)
    if limit is not None and abs(na - nb) > limit:
        return None
    only_a: list[str] = []
    only_b: list[str] = []
    while i < na and j < nb:
        step = _FIRST_BLOCK
        while i < na and j < nb and a[i : i + step] == b[j : j + step]:
            i += step
            j += step
            step = min(step << 1, _MAX_BLOCK)
        step >>= 1  # a difference lies within the block that compared unequal: halve it
        while step and i < na and j < nb:
            if a[i : i + step] == b[j : j + step]:
                i += step
                j += step
            else:
                step >>= 1
        if i >= na or j >= nb:
            break
        if a[i] < b[j]:  # the first difference
            only_a.append(a[i])
            i += 1
        else:
            only_b.append(b[j])
            j += 1
        if limit is not None and len(only_a) + len(only_b) > limit:
            return None
    only_a += a[i:]
    only_b += b[j:]
    if limit is not None and len(only_a) + len(only_b) > limit:
        return None
    return only_a, only_b


def diff_if_few(a: tuple[str, ...], b: tuple[str, ...]) -> tuple[list[str], list[str]] | None:
    """`sorted_diff` while few differ (up to 1/16 of the larger): beyond that a hash set
    of one of them is faster than stepping through every difference in Python."""
    return sorted_diff(a, b, max(len(a), len(b)) // 16)


def apart(runs: list[Sequence[str]]) -> bool:
    """Whether sorted runs, in the order of their first ids, cover ranges that do not
    overlap (a layout of contiguous runs of sorted ids): one comparison per run."""
    return all(x[-1] < y[0] for x, y in pairwise(runs))
