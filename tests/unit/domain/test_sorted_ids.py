"""SortedIds: every set operation the daemon uses answers exactly as a frozenset would."""

from __future__ import annotations

import operator
import sys
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.domain.id_groups import disjoint, held_elsewhere, sorted_union
from reconciler.domain.ids import SortedIds, same_ids, share, step_between
from reconciler.domain.sorted_runs import sorted_diff

# Small alphabet: overlaps are common; sizes on both sides of the "few ids" threshold.
IDS = st.frozensets(st.sampled_from([f"id-{n:03d}" for n in range(120)]), max_size=110)
OPERANDS = st.sampled_from(["set", "frozenset", "sorted"])
BINARY: dict[str, Callable[[Any, Any], Any]] = {
    "&": operator.and_,
    "-": operator.sub,
    "|": operator.or_,
    "^": operator.xor,
    "==": operator.eq,
    "!=": operator.ne,
    "<=": operator.le,
    "<": operator.lt,
    ">=": operator.ge,
    ">": operator.gt,
}


def _as(kind: str, ids: frozenset[str]) -> Any:
    return {"set": set, "frozenset": frozenset, "sorted": SortedIds}[kind](ids)


@settings(max_examples=400, deadline=None)
@given(a=IDS, b=IDS, other=OPERANDS, op=st.sampled_from(sorted(BINARY)), left=st.booleans())
def test_operators_answer_as_frozenset_does_on_either_side(
    a: frozenset[str], b: frozenset[str], other: str, op: str, left: bool
) -> None:
    fn = BINARY[op]
    ours, theirs = SortedIds(a), _as(other, b)
    got = fn(ours, theirs) if left else fn(theirs, ours)
    want = fn(a, b) if left else fn(b, a)
    assert got == want
    if isinstance(got, SortedIds):
        assert list(got) == sorted(got)  # still sorted, still without duplicates
    elif not left and other != "sorted" and op not in BINARY_COMPARISONS:
        assert type(got) is type(theirs)  # a builtin set on the left keeps its type


BINARY_COMPARISONS = {"==", "!=", "<=", "<", ">=", ">"}


@settings(max_examples=300, deadline=None)
@given(a=IDS, b=IDS, other=OPERANDS)
def test_methods_answer_as_frozenset_does(a: frozenset[str], b: frozenset[str], other: str) -> None:
    ours, theirs = SortedIds(a), _as(other, b)
    assert ours.union(theirs, ["zz"]) == a.union(b, ["zz"])
    assert ours.intersection(theirs) == a & b
    assert ours.difference(theirs) == a - b
    assert ours.symmetric_difference(theirs) == a ^ b
    assert ours.isdisjoint(theirs) == a.isdisjoint(b)
    assert ours.isdisjoint(list(b)) == a.isdisjoint(b)
    assert ours.issubset(theirs) == (a <= b)
    assert ours.issuperset(theirs) == (a >= b)
    assert set().union(ours, theirs) == a | b
    assert all((x in ours) == (x in a) for x in b | {"", "zz", 3})  # type: ignore[operator]


@given(ids=IDS)
def test_hashes_and_iterates_like_the_sorted_frozenset(ids: frozenset[str]) -> None:
    ours = SortedIds(ids)
    assert hash(ours) == hash(ids)
    assert list(ours) == sorted(ids)
    assert len(ours) == len(ids)
    assert {ids: 1}[ours] == 1  # usable where a frozenset key is


def test_builds_from_any_iterable_dropping_duplicates() -> None:
    assert list(SortedIds(["b", "a", "b"])) == ["a", "b"]
    assert SortedIds(iter(["x"])) == {"x"}
    assert SortedIds(SortedIds(["c", "a"])) == frozenset({"a", "c"})
    same = SortedIds(["a"])
    assert SortedIds(same) is same  # as frozenset(frozenset): no copy of what cannot change
    assert not SortedIds()
    assert repr(SortedIds(["b", "a"])) == "SortedIds(['a', 'b'])"


def test_an_operation_that_changes_nothing_keeps_the_version() -> None:
    # The planner and the memo tell "unchanged" by version: removing nothing or adding what
    # is there already must hand back the set itself.
    ids = SortedIds(["a", "b"])
    for same in (
        ids - set(),
        ids - {"y", "z"},
        ids & {"a", "b", "c"},  # `ids & rows` with no row deleted
        ids.union(["a"]),
        ids | frozenset(),
        SortedIds(ids),
    ):
        assert same.version == ids.version and same_ids(same, ids)


def test_a_set_built_anew_gets_a_new_version_and_equal_content_is_not_vouched_for() -> None:
    ids = SortedIds(["a", "b"])
    again = SortedIds(["b", "a"])
    assert again == ids and again.version != ids.version and not same_ids(again, ids)
    changed = ids | {"c"}
    assert changed.version > ids.version  # drawn from one counter: never given twice
    # Builtin sets carry no version (they can change in place): never "unchanged".
    assert not same_ids(frozenset(ids), frozenset(ids))
    assert not same_ids(None, None)


def test_sharing_an_equal_read_keeps_the_old_version() -> None:
    old = SortedIds(f"id-{k:04d}" for k in range(100))
    fresh = SortedIds(f"id-{k:04d}" for k in range(100))  # a re-read of an unchanged table
    assert share(old, fresh).version == old.version
    grown = share(old, fresh | {"id-new"})
    assert grown == fresh | {"id-new"} and grown.version != old.version


@pytest.mark.parametrize("n", [5_000])
def test_holds_an_instance_in_a_fraction_of_a_frozenset(n: int) -> None:
    ids = [f"thing-{i:07d}" for i in range(n)]
    compact = SortedIds(ids)
    assert sys.getsizeof(compact) + sys.getsizeof(compact._ids) < sys.getsizeof(frozenset(ids)) / 4


@settings(max_examples=200, deadline=None)
@given(groups=st.lists(IDS, max_size=6), contiguous=st.booleans())
def test_disjoint_answers_as_a_union_of_every_group_would(
    groups: list[frozenset[str]], contiguous: bool
) -> None:
    if contiguous:  # runs of one sorted list: decided by the ranges alone
        groups = _disjoint_groups(groups, contiguous=True)
    want = sum(map(len, groups)) == len(set().union(*groups))
    assert disjoint([SortedIds(g) for g in groups]) == want
    assert disjoint(groups) == want


def _disjoint_groups(groups: list[frozenset[str]], contiguous: bool) -> list[frozenset[str]]:
    """`groups` made disjoint: runs of one sorted list, or each id dealt to one group."""
    ordered = sorted(set().union(*groups))
    if contiguous:
        step = max(1, len(ordered) // max(1, len(groups)))
        return [frozenset(ordered[k : k + step]) for k in range(0, len(ordered), step)]
    n = max(1, len(groups))
    return [frozenset(ordered[k::n]) for k in range(n)]


@given(groups=st.lists(IDS, max_size=6), contiguous=st.booleans(), sorted_ids=st.booleans())
def test_sorted_union_lists_every_id_of_disjoint_groups_in_order(
    groups: list[frozenset[str]], contiguous: bool, sorted_ids: bool
) -> None:
    groups = _disjoint_groups(groups, contiguous)
    given_as = [SortedIds(g) if sorted_ids else set(g) for g in groups]
    assert sorted_union(given_as) == sorted(set().union(*groups))


@given(groups=st.lists(IDS, max_size=6), wanted=IDS, sorted_ids=st.booleans())
def test_held_elsewhere_finds_every_wanted_id_some_group_holds(
    groups: list[frozenset[str]], wanted: frozenset[str], sorted_ids: bool
) -> None:
    want = wanted & set().union(*groups)
    holders = [SortedIds(g) if sorted_ids else set(g) for g in groups]
    assert held_elsewhere(holders, set(wanted)) == want


@pytest.mark.parametrize("changes", [0, 3, 20, 200])
def test_an_instance_among_rows_changed_within_its_range_combines_as_frozensets_do(
    changes: int,
) -> None:
    # An instance of 500 consecutive rows of a 20,000-row table, after `changes` rows were
    # created and as many deleted within its range: as it was (one comparison), a few
    # changes (block comparison of its span of rows), many (a binary search per id).
    table = [f"row-{n:06d}" for n in range(0, 40_000, 2)]
    instance = frozenset(table[10_000:10_500])
    created = {f"row-{n:06d}" for n in range(20_001, 20_001 + 4 * changes, 4)}
    deleted = set(sorted(instance)[1 : 1 + 2 * changes : 2])
    rows = (frozenset(table) | created) - deleted
    for op in ("&", "-", "<=", "isdisjoint"):
        fn = BINARY.get(op) or (lambda x, y: x.isdisjoint(y))
        assert fn(SortedIds(instance), SortedIds(rows)) == fn(instance, rows), op


TABLE = [f"row-{n:05d}" for n in range(3_000)]


@settings(max_examples=150, deadline=None)
@given(
    start=st.integers(0, 2_000),
    size=st.integers(0, 1_000),
    drop=st.frozensets(st.integers(0, 2_999), max_size=300),
    add=st.frozensets(st.integers(0, 2_999), max_size=300),
    op=st.sampled_from(["&", "-", "<=", "==", "|"]),
)
def test_two_sorted_tuples_of_a_table_combine_as_frozensets_do(
    start: int, size: int, drop: frozenset[int], add: frozenset[int], op: str
) -> None:
    # A table's rows against an instance's run of them, or against another read of the
    # table: the binary-search and block-comparison paths, with few and with many changes.
    rows = frozenset(TABLE[:2_000])
    run = frozenset(TABLE[start : start + size])
    other = (rows - {TABLE[n] for n in drop}) | {TABLE[n] for n in add}
    for a, b in ((run, rows), (rows, run), (rows, other), (other, rows)):
        assert BINARY[op](SortedIds(a), SortedIds(b)) == BINARY[op](a, b)


@settings(max_examples=100, deadline=None)
@given(
    drop=st.frozensets(st.integers(0, 2_999), max_size=400),
    add=st.frozensets(st.integers(0, 2_999), max_size=400),
)
def test_sorted_diff_finds_exactly_what_each_side_alone_holds(
    drop: frozenset[int], add: frozenset[int]
) -> None:
    a = frozenset(TABLE[:2_500])
    b = (a - {TABLE[n] for n in drop}) | {TABLE[n] for n in add}
    found = sorted_diff(sorted(a), sorted(b))
    assert found == (sorted(a - b), sorted(b - a))
    limited = sorted_diff(sorted(a), sorted(b), limit=10)
    assert limited is None if len(a ^ b) > 10 else limited == found


@settings(max_examples=200, deadline=None)
@given(
    base=st.sets(st.text(alphabet="abcdef", min_size=1, max_size=3), min_size=40, max_size=80),
    added=st.sets(st.text(alphabet="abcdefg", min_size=1, max_size=3), max_size=2),
    removed=st.sets(st.text(alphabet="abcdef", min_size=1, max_size=3), max_size=2),
)
def test_a_set_made_from_another_by_a_few_ids_knows_the_difference_both_ways(
    base: set[str], added: set[str], removed: set[str]
) -> None:
    before = SortedIds(base)
    after = (before | added) - removed
    assert step_between(before, before | added) is not None or not (added - base)
    assert after - before == (base | added) - removed - base
    assert before - after == base - ((base | added) - removed)
    middle = before | added
    assert middle - before == added - base
    assert before - middle == set()
