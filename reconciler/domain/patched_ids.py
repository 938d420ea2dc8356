"""A table's ids as the last full read plus the row events since: a row event at a million
ids costs what it costs at ten thousand.

A `SortedIds` is one immutable tuple, so every new version of a table's ids (a row created
or deleted) copied every reference of the last one, and freeing the old one released them
all again: a pass over every id of the table per event batch, whose cost grows with the
table (docs/benchmarks.md "Events at a million ids" has the figures). `PatchedIds` keeps
the tuple it was patched from (`base`) and the few ids added and removed since; a patch
copies only those. It is a `SortedIds` in every other respect: the same version contract
(one version, one content), and any operation that needs the whole tuple builds it once
(`ordered`, cached), so code that does not know about patches stays correct.

What the event path needs is cheap without the tuple: its size, membership, and what
changed since the rows a plan was made for (`changes`, for rules/growth_delta.py). The
patches fold into a new base once they outgrow a share of it, or once the tuple was built
anyway; a full read of the table starts a new base (state/rows.py).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable
from collections.abc import Set as AbstractSet

from reconciler.domain.ids import SortedIds, fresh_version, step_between
from reconciler.domain.sorted_runs import joined

# Patches fold into a new base past this many ids added and removed, or past 1/64 of the
# base: the folds' cost, spread over the patches that led to it, stays a small share of each.
FOLD_MIN = 4096
FOLD_SHIFT = 6

_NONE: frozenset[str] = frozenset()


class PatchedIds(SortedIds):
    """`base` less `removed` plus `added` (`added` disjoint from `base`, `removed` within it).

    `parent` and `step`: the version this set was patched from and that patch's ids (added,
    removed), so that the plan made for the parent learns what changed in O(changed)."""

    __slots__ = ("_added", "_base", "_removed", "_sorted")

    _base: SortedIds
    _added: frozenset[str]
    _removed: frozenset[str]
    _sorted: tuple[str, ...] | None

    def __new__(cls, ids: Iterable[str] = ()) -> PatchedIds:
        raise TypeError("PatchedIds are made by patch()")

    @classmethod
    def _make(
        cls,
        base: SortedIds,
        added: frozenset[str],
        removed: frozenset[str],
        parent: int,
        step: tuple[frozenset[str], frozenset[str]],
    ) -> PatchedIds:
        new = object.__new__(cls)
        new._base, new._added, new._removed = base, added, removed
        new._parent, new._step = parent, step
        new._sorted = None
        new._hash_value = None
        new._version = fresh_version()
        return new

    @property  # type: ignore[override]
    def _ids(self) -> tuple[str, ...]:  # the whole tuple, for what needs it: built once
        if self._sorted is None:
            self._sorted = _merged(self._base.ordered, self._added, self._removed)
        return self._sorted

    def __len__(self) -> int:
        return len(self._base) + len(self._added) - len(self._removed)

    def __contains__(self, value: object) -> bool:
        if value in self._added:
            return True
        return value not in self._removed and value in self._base

    def __repr__(self) -> str:
        return f"PatchedIds({list(self._ids)!r})"

    @property
    def built(self) -> bool:
        """Whether the whole tuple was built already (a fold then costs no copy)."""
        return self._sorted is not None


def patch(
    known: AbstractSet[str], added: Iterable[str], removed: Iterable[str]
) -> SortedIds | None:
    """`known` with `added` and without `removed` (ids named by checked row events), or None
    when that changes nothing. O(ids named + ids patched since the last fold) while `known`
    is a SortedIds; any other set is rebuilt (tests hand in builtin sets)."""
    gone = {x for x in removed if x in known}
    new = {x for x in added if x not in known and x not in gone}
    if not new and not gone:
        return None
    if not isinstance(known, SortedIds):
        return SortedIds((set(known) - gone) | new)
    if isinstance(known, PatchedIds):
        base, plus, minus = known._base, set(known._added), set(known._removed)
        if known.built:  # the tuple exists already: it is the new base, for free
            base, plus, minus = SortedIds.from_sorted(known._ids), set(), set()
    else:
        base, plus, minus = known, set(), set()
    for x in new:
        if x in minus:
            minus.discard(x)  # a row of the base deleted and created again
        else:
            plus.add(x)
    for x in gone:
        if x in plus:
            plus.discard(x)
        else:
            minus.add(x)
    step = (frozenset(new), frozenset(gone))
    result = PatchedIds._make(base, frozenset(plus), frozenset(minus), known.version, step)
    if len(plus) + len(minus) > max(FOLD_MIN, len(base) >> FOLD_SHIFT):
        result._ids  # noqa: B018 - the fold: the next patch starts from the tuple
    return result


def changes(
    before: AbstractSet[str], after: AbstractSet[str]
) -> tuple[AbstractSet[str], AbstractSet[str]] | None:
    """(ids added, ids removed) from `before` to `after` when a patch says so without
    comparing the tables: the same set, one patch apart, or patches of one base. None when
    only a comparison of both can tell."""
    if not isinstance(before, SortedIds) or not isinstance(after, SortedIds):
        return None
    if before.version == after.version:
        return _NONE, _NONE
    if (step := step_between(before, after)) is not None:
        return step
    if isinstance(after, PatchedIds):
        if isinstance(before, PatchedIds) and before._base is after._base:
            added = (after._added - before._added) | (before._removed - after._removed)
            removed = (before._added - after._added) | (after._removed - before._removed)
            return added, removed
        if after._base is before:
            return after._added, after._removed
    return None


def _merged(
    base: tuple[str, ...], added: frozenset[str], removed: frozenset[str]
) -> tuple[str, ...]:
    """`base` without `removed` and with `added`, sorted: one copy of the tuple."""
    # At one position an added id goes before the removed one (it sorts before base[at]).
    edits = sorted(
        [(bisect_left(base, x), 0, x) for x in added]
        + [(bisect_left(base, x), 1, x) for x in removed]
    )
    pieces: list[tuple[str, ...]] = []
    start = 0
    for at, is_removal, x in edits:
        pieces.append(base[start:at])
        if is_removal:
            start = at + 1
        else:
            pieces.append((x,))
            start = at
    pieces.append(base[start:])
    return joined(pieces)
