"""Sets of resource ids held once: a new read of a table shares the strings of the last one.

At a million ids the strings are most of the daemon's memory (~85 bytes each); a re-read
that builds a second copy of each, while the assignment still holds the first, doubles it.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Iterator, Sequence, Sized
from collections.abc import Set as AbstractSet
from itertools import chain, filterfalse, islice, pairwise
from operator import eq, itemgetter
from typing import Any


def share(old: AbstractSet[str] | None, new: AbstractSet[str]) -> AbstractSet[str]:
    """`new`, made of `old`'s string objects wherever they are equal: `old` itself when
    nothing changed (so "unchanged" can be told by identity), else the ids both hold taken
    from `old` and only the added ones from `new`."""
    if old is None or old is new:
        return new if old is None else old
    if isinstance(old, SortedIds) and isinstance(new, SortedIds):
        diff = _diff(old._ids, new._ids)  # two reads of a table: a few rows apart
        if diff is None:  # rewritten wholesale: the strings both hold, taken from `old`
            kept = frozenset(new._ids).intersection(old._ids)  # keeps old's objects
            return SortedIds(kept.union(new._ids))  # (a union keeps the left's objects)
        gone, added = diff
        if not gone and not added:
            return old
        return (old - SortedIds.from_sorted(gone)) | SortedIds.from_sorted(added)
    if len(old) == len(new) and old == new:
        return old
    gone = old - new  # CPython's difference keeps the left operand's objects
    added = new - old
    if not gone and not added:
        return old
    return (old - gone) | added if gone else old | added


class SortedIds(AbstractSet[str]):
    """An instance's ids as one sorted tuple: an immutable set of strings at 8 bytes an id.

    A frozenset of an instance's 5,000 ids keeps a hash table of 8,192 slots (256 KiB, with
    its own copy of every hash); 200 of them are 50 MB at a million ids, where the tuple is
    40 KiB. The order is the one ZooKeeper's `resources` node is written in, so a write
    needs no sort. Membership is a binary search; the set operations walk this tuple against
    the other operand (one hash lookup per id when it is a set), so taking the ids of an
    instance that are still rows, `ids & rows`, costs the instance's size, not the table's.

    It compares, hashes and combines like a frozenset: `SortedIds(x) == frozenset(x)`, and
    with a builtin set on the left (`held - ids`, `lost | ids`) the result is of the left
    operand's type, as it would be with a frozenset.
    """

    __slots__ = ("_hash_value", "_ids")

    _ids: tuple[str, ...]
    _hash_value: int | None

    def __new__(cls, ids: Iterable[str] = ()) -> SortedIds:
        if type(ids) is cls:  # immutable: like frozenset(frozenset), the same object
            return ids  # type: ignore[return-value]
        if isinstance(ids, SortedIds):
            return cls.from_sorted(ids._ids)
        if isinstance(ids, (set, frozenset)):
            return cls.from_sorted(sorted(ids))
        ordered = sorted(ids)  # a list read back from ZooKeeper is sorted already: linear
        if any(map(eq, ordered, islice(ordered, 1, None))):
            ordered = sorted(set(ordered))
        return cls.from_sorted(ordered)

    @classmethod
    def from_sorted(cls, ids: Iterable[str]) -> SortedIds:
        """Ids already sorted and without duplicates (a run of a sorted pool): no sort."""
        new = object.__new__(cls)
        new._ids = ids if type(ids) is tuple else tuple(ids)
        new._hash_value = None
        return new

    # -- the Set protocol ------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._ids)

    def __iter__(self) -> Iterator[str]:
        return iter(self._ids)

    def __reversed__(self) -> Iterator[str]:
        return reversed(self._ids)

    def __contains__(self, value: object) -> bool:
        ids = self._ids
        if not isinstance(value, str):
            return False
        at = bisect_left(ids, value)
        return at < len(ids) and ids[at] == value

    def __repr__(self) -> str:
        return f"SortedIds({list(self._ids)!r})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, SortedIds):
            return self._ids == other._ids
        if isinstance(other, AbstractSet):
            return len(self._ids) == len(other) and all(map(other.__contains__, self._ids))
        return NotImplemented

    def __hash__(self) -> int:  # frozenset's: equal sets hash equal, whatever their type
        if self._hash_value is None:
            self._hash_value = self._hash()
        return self._hash_value

    def __le__(self, other: AbstractSet[Any]) -> bool:
        if not isinstance(other, AbstractSet):
            return NotImplemented
        if len(self._ids) > len(other):
            return False
        if isinstance(other, (set, frozenset)):
            return other.issuperset(self._ids)
        if isinstance(other, SortedIds) and _few(self._ids, other._ids):
            return len(_found_in(self._ids, other._ids)) == len(self._ids)
        if isinstance(other, SortedIds) and (found := _diff(self._ids, other._ids)) is not None:
            return not found[0]
        return all(map(_lookup(other), self._ids))

    def __ge__(self, other: AbstractSet[Any]) -> bool:
        if not isinstance(other, AbstractSet):
            return NotImplemented
        return len(self._ids) >= len(other) and all(map(self.__contains__, other))

    def __lt__(self, other: AbstractSet[Any]) -> bool:
        if not isinstance(other, AbstractSet):
            return NotImplemented
        return len(self._ids) < len(other) and self <= other

    def __gt__(self, other: AbstractSet[Any]) -> bool:
        if not isinstance(other, AbstractSet):
            return NotImplemented
        return len(self._ids) > len(other) and self >= other

    def issubset(self, other: Iterable[str]) -> bool:
        return self <= _as_set(other)

    def issuperset(self, other: Iterable[str]) -> bool:
        return self >= _as_set(other)

    def isdisjoint(self, other: Iterable[str]) -> bool:
        other = _as_set(other)
        if _few(other, self._ids):
            return not any(self._found(other))
        return not any(map(_lookup(other), self._ids))

    # -- operations that keep the order: a filter of this tuple ------------------------------

    def __and__(self, other: AbstractSet[Any]) -> SortedIds:
        if not isinstance(other, AbstractSet):
            return NotImplemented
        if _few(other, self._ids):  # a few ids (an event's): look each up here instead
            return SortedIds.from_sorted(sorted(self._found(other)))
        if isinstance(other, (set, frozenset)) and other.issuperset(self._ids):
            return self  # the common case (`ids & rows`, no row deleted): no copy, same object
        if isinstance(other, SortedIds):
            if _few(self._ids, other._ids):  # an instance's ids among a table's rows
                found = _found_in(self._ids, other._ids)
                return self if len(found) == len(self._ids) else SortedIds.from_sorted(found)
            if (diff := _diff(self._ids, other._ids)) is not None:
                return self - SortedIds.from_sorted(diff[0])
        return SortedIds.from_sorted(filter(_lookup(other), self._ids))

    def __sub__(self, other: AbstractSet[Any]) -> SortedIds:
        if not isinstance(other, AbstractSet):
            return NotImplemented
        if not other:
            return self
        if isinstance(other, SortedIds) and (other is self or other._ids == self._ids):
            return EMPTY  # an instance's ids less themselves (nothing gained): no lookups
        if _few(other, self._ids):  # cut the few out: slices, no lookup per id kept
            cuts = sorted({bisect_left(self._ids, x) for x in self._found(other)})
            if not cuts:
                return self
            pieces: list[tuple[str, ...]] = []
            start = 0
            for at in cuts:
                pieces.append(self._ids[start:at])
                start = at + 1
            pieces.append(self._ids[start:])
            return SortedIds.from_sorted(_joined(pieces))
        if isinstance(other, (set, frozenset)) and other.isdisjoint(self._ids):
            return self
        if isinstance(other, SortedIds):
            if _few(self._ids, other._ids):
                found = _found_in(self._ids, other._ids)
                return self if not found else self - SortedIds.from_sorted(found)
            if (diff := _diff(self._ids, other._ids)) is not None:  # two reads of a table
                return self if len(diff[0]) == len(self._ids) else SortedIds.from_sorted(diff[0])
        return SortedIds.from_sorted(filterfalse(_lookup(other), self._ids))

    def _found(self, few: Iterable[Any]) -> Iterator[str]:
        """Those of `few` this set holds (a binary search each)."""
        return filter(self.__contains__, few)

    def intersection(self, *others: Iterable[str]) -> SortedIds:
        result = self
        for other in others:
            result = result & _as_set(other)
        return result

    def difference(self, *others: Iterable[str]) -> SortedIds:
        result = self
        for other in others:
            result = result - _as_set(other)
        return result

    # -- operations that add ids: the new ones merged in -------------------------------------

    def __or__(self, other: AbstractSet[Any]) -> SortedIds:
        if not isinstance(other, AbstractSet):
            return NotImplemented
        return self.union(other)

    def union(self, *others: Iterable[str]) -> SortedIds:
        added: set[str] = set()
        for other in others:
            added.update(other)
        if _few(added, self._ids):  # a row event's ids into a table's: put each in its place
            new = sorted(x for x in added if x not in self)
            if not new:
                return self
            pieces = []
            start = 0
            for x in new:
                at = bisect_left(self._ids, x, start)
                pieces += (self._ids[start:at], (x,))
                start = at
            pieces.append(self._ids[start:])
            return SortedIds.from_sorted(_joined(pieces))
        added.difference_update(self._ids)  # walks this tuple once, not a set of it
        if not added:
            return self
        # Two sorted runs: timsort merges them in linear time.
        return SortedIds.from_sorted(sorted(self._ids + tuple(sorted(added))))

    def __xor__(self, other: AbstractSet[Any]) -> SortedIds:
        if not isinstance(other, AbstractSet):
            return NotImplemented
        return (self - other) | SortedIds(_lookup_set(other) - set(self._ids))

    def symmetric_difference(self, other: Iterable[str]) -> SortedIds:
        return self ^ _as_set(other)

    # -- a builtin set on the left: its type, as with a frozenset ----------------------------

    def __rand__(self, other: AbstractSet[Any]) -> AbstractSet[Any]:
        if isinstance(other, (set, frozenset)):
            if _few(other, self._ids):  # `lost & ids`: walk the smaller one, as sets do
                return type(other)(self._found(other))
            return other.intersection(self._ids)  # walks this tuple, looks up in `other`
        if not isinstance(other, AbstractSet):
            return NotImplemented
        return self & other

    def __rsub__(self, other: AbstractSet[Any]) -> AbstractSet[Any]:
        if isinstance(other, (set, frozenset)):
            if _few(other, self._ids):  # `event ids - rows`: look the few up here
                return type(other)(x for x in other if x not in self)
            return other.difference(self._ids)
        if not isinstance(other, AbstractSet):
            return NotImplemented
        return SortedIds(x for x in other if x not in self)

    def __ror__(self, other: AbstractSet[Any]) -> AbstractSet[Any]:
        if isinstance(other, (set, frozenset)):
            return other.union(self._ids)
        if not isinstance(other, AbstractSet):
            return NotImplemented
        return self | other

    def __rxor__(self, other: AbstractSet[Any]) -> AbstractSet[Any]:
        if isinstance(other, (set, frozenset)):
            return other.symmetric_difference(self._ids)
        if not isinstance(other, AbstractSet):
            return NotImplemented
        return self ^ other


EMPTY = SortedIds()


def _few(other: Sized, ids: Sized) -> bool:
    """Whether looking each of `other` up in `ids` (a binary search in Python, ~15 times a
    hash lookup in C) is cheaper than looking each of `ids` up in `other`."""
    return len(other) * 16 < len(ids)


def _joined(pieces: list[tuple[str, ...]]) -> tuple[str, ...]:
    """The pieces as one tuple. Every copy of a table's ids touches each string (its
    reference count), ~10 ms at 500k: a few pieces are added up (two passes), many chained."""
    if len(pieces) <= 3:
        return sum(pieces, ())
    return tuple(chain.from_iterable(pieces))


def _found_in(few: tuple[str, ...], ids: tuple[str, ...]) -> list[str]:
    """Those of the sorted `few` that the sorted `ids` hold. A run of `ids` equal to `few`
    (an instance made of consecutive rows) is found by one comparison; a run that differs
    from `few` by a few ids (rows created or deleted among the instance's since) by block
    comparison (`sorted_diff`); else one binary search each, from where the last ended."""
    if not few:
        return []
    start = bisect_left(ids, few[0])
    if ids[start : start + len(few)] == few:
        return list(few)
    span = ids[start : bisect_right(ids, few[-1], start)]
    diff = sorted_diff(few, span, len(few) // 16)
    if diff is not None:
        if not diff[0]:
            return list(few)
        missing = set(diff[0])
        return [x for x in few if x not in missing]
    found: list[str] = []
    end = len(ids)
    for x in few:
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
    by comparing blocks of both (two reads of a 500k-row table that differ by a few rows:
    a few ms and no set of either); None once more than `limit` ids differ (sets do better).
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


def _diff(a: tuple[str, ...], b: tuple[str, ...]) -> tuple[list[str], list[str]] | None:
    """`sorted_diff` while few differ (up to 1/16 of the larger): beyond that a hash set
    of one of them is faster than stepping through every difference in Python."""
    return sorted_diff(a, b, max(len(a), len(b)) // 16)


def _as_set(other: Iterable[str]) -> AbstractSet[str]:
    return other if isinstance(other, AbstractSet) else set(other)


def _lookup(other: AbstractSet[Any]) -> Callable[[object], bool]:
    """`other.__contains__`, made a hash lookup when `other` is another sorted tuple (a
    binary search in Python per id would be ten times slower than building the set)."""
    if isinstance(other, SortedIds):
        return frozenset(other._ids).__contains__
    return other.__contains__


def _lookup_set(other: AbstractSet[Any]) -> set[Any]:
    return set(other._ids) if isinstance(other, SortedIds) else set(other)


def _sorted_runs(groups: Iterable[AbstractSet[str]]) -> list[Sequence[str]]:
    """Each non-empty group as a sorted sequence, in the order of their smallest ids."""
    return sorted(
        (g._ids if isinstance(g, SortedIds) else tuple(sorted(g)) for g in groups if g),
        key=itemgetter(0),
    )


def _apart(runs: list[Sequence[str]]) -> bool:
    """Whether sorted runs, in the order of their first ids, cover ranges that do not
    overlap (a layout of contiguous runs of sorted ids): one comparison per run."""
    return all(a[-1] < b[0] for a, b in pairwise(runs))


def disjoint(groups: Iterable[AbstractSet[str]]) -> bool:
    """Whether no id is in two of `groups`, without a set of them all (at a million ids a
    24 MiB set, where the list this sorts is 8 MiB): by their ranges first (a layout of
    contiguous runs of sorted ids: one comparison per group), else one sort of all of them
    (timsort merges the groups' sorted runs)."""
    runs = _sorted_runs(groups)
    if _apart(runs):
        return True
    merged = list(chain.from_iterable(runs))
    merged.sort()
    return not any(map(eq, merged, islice(merged, 1, None)))


def sorted_union(groups: Iterable[AbstractSet[str]]) -> list[str]:
    """Every id of the disjoint `groups`, sorted: the runs put end to end when their ranges
    do not overlap (a layout of contiguous runs: no comparison of ids), else one sort
    (timsort merges the runs; at 400k ids ~40 ms that the first case saves)."""
    runs = _sorted_runs(groups)
    merged = list(chain.from_iterable(runs))
    if not _apart(runs):
        merged.sort()
    return merged


def held_elsewhere(holders: Iterable[AbstractSet[str]], wanted: AbstractSet[str]) -> set[str]:
    """Those of `wanted` that any of `holders` holds, without building the union of every
    holder (at a million ids a 24 MiB set, to look up the ids a plan moves). The wanted ids,
    sorted once, are cut to each sorted holder's range (a layout of contiguous runs: each
    wanted id falls in one or two ranges), and only those are looked for in it."""
    found: set[str] = set()
    if not wanted:
        return found
    ordered = sorted(wanted)
    for ids in holders:
        if isinstance(ids, SortedIds):
            if not ids:
                continue
            held = ids._ids
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
