"""Sets of resource ids held once: a new read of a table shares the strings of the last one.

At a million ids the strings are most of the daemon's memory; a re-read that builds a second
copy of each, while the assignment still holds the first, doubles it.

The set type, `SortedIds`, lives here with its version (how "unchanged" is told, see its
docstring); the sorted-run algorithms it is built on are in sorted_runs.py, and questions
about a whole layout's ids (`disjoint`, `sorted_union`, `held_elsewhere`) in id_groups.py.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator
from collections.abc import Set as AbstractSet
from itertools import count, filterfalse, islice
from operator import eq
from typing import Any

from reconciler.domain.sorted_runs import diff_if_few, few, found_in, joined

# Where every SortedIds' version is drawn from: one counter for the process, so that a version
# is never given twice (see SortedIds).
_VERSIONS = count(1)


def fresh_version() -> int:
    """A version no set was given before (for the sets built on SortedIds, patched_ids.py)."""
    return next(_VERSIONS)


def share(old: AbstractSet[str] | None, new: AbstractSet[str]) -> AbstractSet[str]:
    """`new`, made of `old`'s string objects wherever they are equal: `old` itself when
    nothing changed (so it keeps its version: SortedIds), else the ids both hold taken
    from `old` and only the added ones from `new`."""
    if old is None:
        return new
    if same_ids(old, new):
        return old
    if isinstance(old, SortedIds) and isinstance(new, SortedIds):
        diff = diff_if_few(old._ids, new._ids)  # two reads of a table: a few rows apart
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
    """An instance's ids as one sorted tuple: an immutable set of strings at one pointer an id.

    A frozenset keeps a hash table with room to spare and its own copy of every hash: several
    times the tuple's memory, and a large fleet holds one per instance (docs/benchmarks.md
    has the figures). The order is the one ZooKeeper's `resources` node is written in, so a
    write needs no sort. Membership is a binary search; the set operations walk this tuple
    against the other operand (one hash lookup per id when it is a set), so taking the ids of
    an instance that are still rows, `ids & rows`, costs the instance's size, not the table's.

    It compares, hashes and combines like a frozenset: `SortedIds(x) == frozenset(x)`, and
    with a builtin set on the left (`held - ids`, `lost | ids`) the result is of the left
    operand's type, as it would be with a frozenset.

    **Version: how "unchanged" is told.** Every SortedIds carries a `version`, drawn from one
    counter for the whole process when the set is made and never given again. The contract:

    - Same version, same ids (`same_ids`): the set is immutable, so a version names one
      content for good. Telling "unchanged" costs one integer comparison, not a comparison
      or a hash of every id, which is what keeps a converged pass at a million ids
      O(changed).
    - A different version says nothing: an equal set built anew (a fresh read of a table or
      of ZooKeeper) has a version of its own. Comparing content is the caller's choice.
    - An operation that changes nothing returns its operand, version and all: `ids & rows`
      with no row deleted, `ids - s` removing nothing, a union adding nothing,
      `SortedIds(ids)`, `share` of an equal read. Whoever hands on an unchanged set must
      hand on that set (the planner gives an unchanged instance its current set back),
      or the next pass sees a change where there was none and does the work again.
    - Equality and hashing ignore the version: it is bookkeeping, never content.

    The plan memo (rules/plan_memo.py), the delta path (rules/growth_delta.py), the
    safety valve and the caches under the pass rely on it.
    """

    __slots__ = ("_hash_value", "_ids", "_parent", "_step", "_version")

    _ids: tuple[str, ...]
    _hash_value: int | None
    _version: int
    # Made from the set of version `_parent` by adding `_step[0]` and removing `_step[1]` (a
    # few ids: `union` or `-` of a few): what changed between the two is known without
    # comparing them (`step_between`), which the writes of a row event ask of every instance
    # it touches. 0 and None: made otherwise.
    _parent: int
    _step: tuple[frozenset[str], frozenset[str]] | None

    def __new__(cls, ids: Iterable[str] = ()) -> SortedIds:
        if type(ids) is cls:  # immutable: like frozenset(frozenset), the same object (version)
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
        new._version = next(_VERSIONS)
        new._parent, new._step = 0, None
        return new

    @property
    def version(self) -> int:
        """Names this set's content for good; see the class docstring for the contract."""
        return self._version

    @property
    def ordered(self) -> tuple[str, ...]:
        """The ids as the sorted tuple this set holds (no copy)."""
        return self._ids

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
        if isinstance(other, SortedIds) and few(self._ids, other._ids):
            return len(found_in(self._ids, other._ids)) == len(self._ids)
        if (
            isinstance(other, SortedIds)
            and (found := diff_if_few(self._ids, other._ids)) is not None
        ):
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
        if few(other, self._ids):
            return not any(self._found(other))
        return not any(map(_lookup(other), self._ids))

    # -- operations that keep the order: a filter of this tuple ------------------------------

    def __and__(self, other: AbstractSet[Any]) -> SortedIds:
        if not isinstance(other, AbstractSet):
            return NotImplemented
        if few(other, self._ids):  # a few ids (an event's): look each up here instead
            return SortedIds.from_sorted(sorted(self._found(other)))
        if isinstance(other, (set, frozenset)) and other.issuperset(self._ids):
            return self  # the common case (`ids & rows`, no row deleted): no copy, same version
        if isinstance(other, SortedIds):
            if few(self._ids, other._ids):  # an instance's ids among a table's rows
                found = found_in(self._ids, other._ids)
                return self if len(found) == len(self._ids) else SortedIds.from_sorted(found)
            if (diff := diff_if_few(self._ids, other._ids)) is not None:
                return self - SortedIds.from_sorted(diff[0])
        return SortedIds.from_sorted(filter(_lookup(other), self._ids))

    def __sub__(self, other: AbstractSet[Any]) -> SortedIds:
        if not isinstance(other, AbstractSet):
            return NotImplemented
        if not other:
            return self
        if isinstance(other, SortedIds):
            if (step := step_between(other, self)) is not None:  # one made from the other
                return SortedIds.from_sorted(sorted(step[0])) if step[0] else EMPTY
            if other._version == self._version or other._ids == self._ids:
                return EMPTY  # an instance's ids less themselves (nothing gained): no lookups
        if few(other, self._ids):  # cut the few out: slices, no lookup per id kept
            found = set(self._found(other))
            if not found:
                return self
            pieces: list[tuple[str, ...]] = []
            start = 0
            for at in sorted(bisect_left(self._ids, x) for x in found):
                pieces.append(self._ids[start:at])
                start = at + 1
            pieces.append(self._ids[start:])
            return self._made(joined(pieces), frozenset(), frozenset(found))
        if isinstance(other, (set, frozenset)) and other.isdisjoint(self._ids):
            return self
        if isinstance(other, SortedIds):
            if few(self._ids, other._ids):
                found = found_in(self._ids, other._ids)
                return self if not found else self - SortedIds.from_sorted(found)
            if (diff := diff_if_few(self._ids, other._ids)) is not None:  # two reads of a table
                return self if len(diff[0]) == len(self._ids) else SortedIds.from_sorted(diff[0])
        return SortedIds.from_sorted(filterfalse(_lookup(other), self._ids))

    def _made(
        self, ids: tuple[str, ...], added: frozenset[str], removed: frozenset[str]
    ) -> SortedIds:
        """A new set of `ids`: this one with `added` and without `removed`, and says so."""
        new = SortedIds.from_sorted(ids)
        new._parent, new._step = self._version, (added, removed)
        return new

    def _found(self, some: Iterable[Any]) -> Iterator[str]:
        """Those of `some` (a few) this set holds (a binary search each)."""
        return filter(self.__contains__, some)

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
        if few(added, self._ids):  # a row event's ids into a table's: put each in its place
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
            return self._made(joined(pieces), frozenset(new), frozenset())
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
            if few(other, self._ids):  # `lost & ids`: walk the smaller one, as sets do
                return type(other)(self._found(other))
            return other.intersection(self._ids)  # walks this tuple, looks up in `other`
        if not isinstance(other, AbstractSet):
            return NotImplemented
        return self & other

    def __rsub__(self, other: AbstractSet[Any]) -> AbstractSet[Any]:
        if isinstance(other, (set, frozenset)):
            if few(other, self._ids):  # `event ids - rows`: look the few up here
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


def same_ids(a: AbstractSet[str] | None, b: AbstractSet[str] | None) -> bool:
    """Whether `a` and `b` are known to hold the same ids without looking at one: both
    SortedIds of one version (SortedIds' contract). False means "not known", not "different":
    an equal set built anew, or any other kind of set, is not vouched for (a builtin set can
    change in place, so nothing about it is known from one pass to the next)."""
    return isinstance(a, SortedIds) and isinstance(b, SortedIds) and a._version == b._version


def step_between(
    before: SortedIds, after: SortedIds
) -> tuple[frozenset[str], frozenset[str]] | None:
    """(ids added, ids removed) from `before` to `after` when one was made from the other by
    a few ids (`union` or `-` of a few, a row event's patch); None when only a comparison of
    the two can tell."""
    if after._parent == before._version and after._step is not None:
        return after._step
    if before._parent == after._version and before._step is not None:
        return before._step[1], before._step[0]
    return None


def _as_set(other: Iterable[str]) -> AbstractSet[str]:
    return other if isinstance(other, AbstractSet) else set(other)


def _lookup(other: AbstractSet[Any]) -> Callable[[object], bool]:
    """`other.__contains__`, made a hash lookup when `other` is another sorted tuple (a
    binary search in Python per id would be much slower than building the set)."""
    if isinstance(other, SortedIds):
        return frozenset(other._ids).__contains__
    return other.__contains__


def _lookup_set(other: AbstractSet[Any]) -> set[Any]:
    return set(other._ids) if isinstance(other, SortedIds) else set(other)
