"""PatchedIds: a table's ids patched by row events hold exactly the ids a rebuilt set would,
tell what changed without comparing tables, and never copy the table on a patch."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.domain import patched_ids
from reconciler.domain.ids import SortedIds
from reconciler.domain.patched_ids import PatchedIds, changes, patch

IDS = [f"id-{k:04d}" for k in range(60)]

# Each step: ids (by index into IDS) named as added, and ids named as removed.
STEPS = st.lists(
    st.tuples(
        st.sets(st.integers(0, len(IDS) - 1), max_size=4),
        st.sets(st.integers(0, len(IDS) - 1), max_size=4),
    ),
    min_size=1,
    max_size=40,
)


def _patched(known: SortedIds, added: set[int], removed: set[int]) -> SortedIds:
    out = patch(known, [IDS[i] for i in added - removed], [IDS[i] for i in removed])
    return known if out is None else out


@settings(max_examples=300, deadline=None)
@given(
    start=st.sets(st.integers(0, len(IDS) - 1)), steps=STEPS, fold_min=st.sampled_from([2, 8, 4096])
)
def test_patches_hold_what_a_rebuilt_set_holds_and_say_what_changed(
    start: set[int], steps: list[tuple[set[int], set[int]]], fold_min: int
) -> None:
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(patched_ids, "FOLD_MIN", fold_min)
        truth = {IDS[i] for i in start}
        known = SortedIds(truth)
        history = [(known, frozenset(truth))]
        for added, removed in steps:
            before = known
            known = _patched(known, added, removed)
            truth = (truth - {IDS[i] for i in removed}) | {IDS[i] for i in added - removed}
            assert len(known) == len(truth)
            assert all((x in known) == (x in truth) for x in IDS)
            assert list(known.ordered) == sorted(truth)
            assert known == frozenset(truth)
            if known is before:
                continue  # nothing changed: the same set, version and all
            assert known.version != before.version
            history.append((known, frozenset(truth)))
        for old, old_truth in history:
            told = changes(old, known)
            if told is not None:
                assert (set(told[0]), set(told[1])) == (truth - old_truth, old_truth - truth)


def test_a_patch_that_changes_nothing_returns_none() -> None:
    known = SortedIds(IDS[:10])
    assert patch(known, [IDS[0]], [IDS[50]]) is None  # created already, deleted already


def test_a_patch_of_a_large_table_copies_no_tuple() -> None:
    table = SortedIds(f"{k:07d}" for k in range(200_000))
    first = patch(table, ["0000000x"], [])
    second = patch(first, [], ["0000005"])
    assert isinstance(second, PatchedIds)
    assert not first.built and not second.built
    assert len(second) == 200_000
    assert "0000000x" in second and "0000005" not in second
    assert changes(first, second) == (frozenset(), frozenset({"0000005"}))
    assert changes(table, second) == ({"0000000x"}, {"0000005"})


def test_patches_fold_into_a_new_base_once_they_outgrow_their_share() -> None:
    table = SortedIds(f"{k:07d}" for k in range(1000))
    known: SortedIds = table
    for k in range(patched_ids.FOLD_MIN + 1):
        known = patch(known, [f"{k:07d}x"], []) or known
    assert isinstance(known, PatchedIds) and known.built
    after = patch(known, ["zzz"], [])
    assert isinstance(after, PatchedIds) and not after.built
    assert len(after) == 1000 + patched_ids.FOLD_MIN + 2
    assert changes(known, after) == (frozenset({"zzz"}), frozenset())


def test_unrelated_sets_are_left_to_a_comparison() -> None:
    a = SortedIds(IDS[:5])
    b = SortedIds(IDS[:6])
    assert changes(a, b) is None
    assert changes(a, a) == (frozenset(), frozenset())
    assert changes(frozenset(IDS[:5]), b) is None


def test_patched_ids_are_sorted_ids_to_every_other_operation() -> None:
    known = patch(SortedIds(IDS[:10]), [IDS[20]], [IDS[3]])
    assert isinstance(known, SortedIds)
    inst = SortedIds([IDS[1], IDS[3], IDS[20]])
    assert inst & known == {IDS[1], IDS[20]}
    assert known - inst == set(IDS[:10]) - {IDS[1], IDS[3]}
    assert hash(known) == hash(frozenset(known))
    with pytest.raises(TypeError):
        PatchedIds(IDS)
