"""id_strings: an assignment's ids re-made of the rows' string objects are the same sets by
version and content, hold the rows' objects for every id that is a row, and cost nothing
once shared, whatever the layout (runs of the rows, runs with gaps, interleaved)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.domain import id_strings
from reconciler.domain.id_strings import in_row_strings, row_strings
from reconciler.domain.ids import SortedIds, same_ids
from reconciler.domain.patched_ids import patch

NAMES = [f"id-{k:04d}" for k in range(400)]


def parsed(ids: list[str]) -> SortedIds:
    """Ids as a JSON parse gives them: equal strings, other objects than the rows'."""
    return SortedIds("".join(list(x)) for x in ids)


def _check(sets: dict[int, SortedIds], table: SortedIds) -> dict[int, SortedIds]:
    """The re-made sets, checked: same version and ids, the rows' objects wherever an id is
    a row, the set's own elsewhere; a set left out has no id that is a row."""
    row_of = {x: x for x in table}
    assert not any(x is row_of.get(x) for ids in sets.values() for x in ids)
    shared = in_row_strings(sets, table.ordered)
    for i, ids in sets.items():
        if i not in shared:
            assert not any(x in row_of for x in ids)
            continue
        assert same_ids(shared[i], ids) and shared[i].ordered == ids.ordered
        own = set(map(id, ids))
        assert all(x is row_of[x] if x in row_of else id(x) in own for x in shared[i])
    assert in_row_strings({**sets, **shared}, table.ordered) == {}  # shared now: nothing to do
    return shared


@settings(max_examples=300, deadline=None)
@given(
    rows=st.sets(st.integers(0, 399), min_size=1),
    owners=st.dictionaries(st.integers(0, 420), st.integers(0, 4), max_size=300),
    batch=st.sampled_from([1, 50, 1 << 17]),
)
def test_every_layout_ends_up_in_the_rows_strings_at_the_same_versions(
    rows: set[int], owners: dict[int, int], batch: int
) -> None:
    names = [*NAMES, *(f"zz-{k}" for k in range(21))]  # 400..420: ids that are no row
    table = SortedIds(NAMES[i] for i in rows)
    layout = {i: [names[k] for k, owner in owners.items() if owner == i] for i in range(5)}
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(id_strings, "WALK_BATCH", batch)
        _check({i: parsed(ids) for i, ids in layout.items()}, table)


def test_an_id_two_instances_hold_keeps_both_sets_as_they_were() -> None:
    table = SortedIds(NAMES)
    sets = {0: parsed(NAMES[::2]), 1: parsed(NAMES[::3])}  # a hand edit: "id-0000" twice
    shared = in_row_strings(sets, table.ordered)
    assert shared.keys() == {0, 1}
    assert all(same_ids(shared[i], sets[i]) and shared[i].ordered == sets[i].ordered for i in sets)


def test_runs_runs_with_gaps_and_interleaved_instances_are_all_taken() -> None:
    table = SortedIds(NAMES)
    gappy = [x for k, x in enumerate(NAMES[100:200]) if k % 30]
    sets = {0: parsed(NAMES[:100]), 1: parsed(gappy), 2: parsed(NAMES[200::2])}
    assert _check(sets, table).keys() == {0, 1, 2}


def test_runs_only_leaves_interleaved_instances_for_later() -> None:
    table = SortedIds(NAMES)
    sets = {0: parsed(NAMES[:100]), 1: parsed(NAMES[200::2])}
    assert in_row_strings(sets, table.ordered, runs_only=True).keys() == {0}


def test_a_few_interleaved_ids_among_many_rows_are_searched_one_by_one() -> None:
    table = SortedIds(f"row-{k:06d}" for k in range(20_000))
    sets = {0: parsed([*table.ordered[::400], "zz"])}  # 50 ids: no walk of 20k rows
    assert _check(sets, table).keys() == {0}


def test_ids_none_of_which_are_rows_stay_the_same_set() -> None:
    assert (
        in_row_strings({0: parsed(["zz-1", "zz-2"]), 1: SortedIds()}, SortedIds(NAMES).ordered)
        == {}
    )


def test_a_patched_table_lends_its_base_until_its_tuple_is_built() -> None:
    base = SortedIds(NAMES[:40])
    patched = patch(base, ["id-9999"], [NAMES[0]])
    assert patched is not None
    assert row_strings(patched) is base.ordered
    assert row_strings({"a", "b"}) is None
    patched.ordered  # noqa: B018 - builds the tuple: from now on the table's own
    assert row_strings(patched) == tuple(sorted(set(NAMES[1:40]) | {"id-9999"}))
