"""growth_delta: planning from the last plan gives exactly what planning from scratch gives."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.domain.ids import SortedIds
from reconciler.domain.model import (
    NO_INTENT,
    KindIntent,
    KindObserved,
    Observed,
    WriteInstance,
    applied,
)
from reconciler.domain.patched_ids import patch
from reconciler.policy.schema import KindPolicy
from reconciler.reconcile.planner import plan
from reconciler.rules.plan_memo import IdPlanMemo

POLICY = KindPolicy(
    table="Thing",
    instance_name="iota-dac",
    template="t",
    resource_per_instance=40,
    init_instances=3,
    max_instances=12,
)

CHANGES = st.lists(
    st.tuples(st.integers(0, 25), st.integers(0, 25)),  # rows added, rows removed
    min_size=1,
    max_size=25,
)


@settings(max_examples=200, deadline=None)
@given(start=st.integers(0, 150), changes=CHANGES)
def test_planning_from_the_last_plan_equals_planning_from_scratch(
    start: int, changes: list[tuple[int, int]]
) -> None:
    memo = IdPlanMemo()
    serial = 0
    rows: list[str] = []

    def new(n: int) -> list[str]:
        nonlocal serial
        serial += n
        return [f"id-{k:05d}" for k in range(serial - n, serial)]

    rows = new(start)
    assignment = {}
    for added, removed in [(0, 0), *changes]:
        rows = rows[removed:] + new(added)
        observed = Observed(
            0.0, {"Thing": KindObserved("Thing", frozenset(rows), assignment, {})}, 0.0
        )
        with_memo = plan({"Thing": POLICY}, observed, memo=memo)
        from_scratch = plan({"Thing": POLICY}, observed)
        assert with_memo == from_scratch
        assignment = applied(assignment, with_memo.ops)


def test_a_few_new_rows_touch_only_the_instances_that_take_them() -> None:
    memo = IdPlanMemo()
    rows = frozenset(f"id-{k}" for k in range(100))
    observed = Observed(0.0, {"Thing": KindObserved("Thing", rows, {}, {})}, 0.0)
    assignment = applied({}, plan({"Thing": POLICY}, observed, memo=memo).ops)
    observed = Observed(0.0, {"Thing": KindObserved("Thing", rows, assignment, {})}, 0.0)
    converged = plan({"Thing": POLICY}, observed, memo=memo).ops  # the layout held as it is
    assert not any(isinstance(op, WriteInstance) for op in converged)
    more = rows | {"new-1", "new-2"}
    observed = Observed(0.0, {"Thing": KindObserved("Thing", more, assignment, {})}, 0.0)
    grown = memo.grown
    the_plan = plan({"Thing": POLICY}, observed, memo=memo)
    written = {op.instance.instance_id for op in the_plan.ops if isinstance(op, WriteInstance)}
    assert len(written) == 1 and the_plan == plan({"Thing": POLICY}, observed)
    assert memo.grown == grown + 1  # planned from the last plan, not from scratch


INTENTS = st.sampled_from(
    [
        NO_INTENT,
        KindIntent(scale_target=4),
        KindIntent(scale_target=6),
        KindIntent(pinned=3),
        KindIntent(pinned=5),
        KindIntent(rebalance=True),
    ]
)


@settings(max_examples=200, deadline=None)
@given(start=st.integers(0, 150), changes=CHANGES, intent=INTENTS, by_events=st.booleans())
def test_the_delta_path_and_the_full_path_agree_under_any_intent(
    start: int, changes: list[tuple[int, int]], intent: KindIntent, by_events: bool
) -> None:
    """Rows as the daemon holds them (SortedIds, the same set while nothing changed; or
    patched by row events, domain/patched_ids.py), an autoscaling target or a pin: the plan
    made from the last one (or reused) is the plan made from scratch, new instances opened
    included."""
    memo = IdPlanMemo()
    serial = 0

    def new(n: int) -> list[str]:
        nonlocal serial
        serial += n
        return [f"id-{k:05d}" for k in range(serial - n, serial)]

    listed = new(start)
    rows = SortedIds(listed)
    assignment = {}
    for added, removed in [(0, 0), *changes]:
        if added or removed:
            gone, listed = listed[:removed], listed[removed:] + new(added)
            if by_events:
                rows = patch(rows, listed[len(listed) - added :], gone) or rows
            else:
                rows = SortedIds(listed)
        observed = Observed(0.0, {"Thing": KindObserved("Thing", rows, assignment, {})}, 0.0)
        with_memo = plan({"Thing": POLICY}, observed, {"Thing": intent}, memo)
        from_scratch = plan({"Thing": POLICY}, observed, {"Thing": intent})
        assert with_memo == from_scratch
        assignment = applied(assignment, with_memo.ops)


def test_the_delta_path_opens_a_new_instance_as_the_full_path_does() -> None:
    memo = IdPlanMemo()
    rows = SortedIds(f"id-{k:04d}" for k in range(110))  # 3 instances of 40: 10 of room
    observed = Observed(0.0, {"Thing": KindObserved("Thing", rows, {}, {})}, 0.0)
    assignment = applied({}, plan({"Thing": POLICY}, observed, memo=memo).ops)
    assert sorted(assignment) == [0, 1, 2]
    more = rows | {f"new-{k:02d}" for k in range(25)}  # 15 more than the room left
    observed = Observed(0.0, {"Thing": KindObserved("Thing", more, assignment, {})}, 0.0)
    grown = memo.grown
    the_plan = plan({"Thing": POLICY}, observed, memo=memo)
    assert memo.grown == grown + 1  # planned from the last plan
    assert the_plan == plan({"Thing": POLICY}, observed)
    created = [op for op in the_plan.ops if isinstance(op, WriteInstance) and op.create]
    assert [op.instance.instance_id for op in created] == [3]


def test_a_converged_pass_reuses_the_plan_by_version_without_reading_an_id(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    memo = IdPlanMemo()
    rows = SortedIds(f"id-{k:04d}" for k in range(100))
    observed = Observed(0.0, {"Thing": KindObserved("Thing", rows, {}, {})}, 0.0)
    assignment = applied({}, plan({"Thing": POLICY}, observed, memo=memo).ops)
    observed = Observed(0.0, {"Thing": KindObserved("Thing", rows, assignment, {})}, 0.0)
    plan({"Thing": POLICY}, observed, memo=memo)  # the layout held as it is: stored
    hits = memo.hits

    def untouchable(*_: object) -> None:
        raise AssertionError("a converged pass read an id")

    for name in ("__iter__", "__contains__", "__eq__", "__hash__", "__and__", "__sub__"):
        monkeypatch.setattr(SortedIds, name, untouchable)
    again = plan({"Thing": POLICY}, observed, memo=memo)
    monkeypatch.undo()
    assert memo.hits == hits + 1
    assert not any(isinstance(op, WriteInstance) for op in again.ops)


def test_equal_rows_built_anew_are_planned_again_and_to_the_same_plan() -> None:
    memo = IdPlanMemo()
    rows = SortedIds(f"id-{k:04d}" for k in range(100))
    observed = Observed(0.0, {"Thing": KindObserved("Thing", rows, {}, {})}, 0.0)
    assignment = applied({}, plan({"Thing": POLICY}, observed, memo=memo).ops)
    held = Observed(0.0, {"Thing": KindObserved("Thing", rows, assignment, {})}, 0.0)
    first = plan({"Thing": POLICY}, held, memo=memo)
    reread = SortedIds(list(rows))  # equal, another version: not vouched for
    observed = Observed(0.0, {"Thing": KindObserved("Thing", reread, assignment, {})}, 0.0)
    hits, grown = memo.hits, memo.grown
    assert plan({"Thing": POLICY}, observed, memo=memo) == first
    assert memo.hits == hits and memo.grown == grown + 1


def test_rows_that_are_no_sorted_ids_carry_no_version_and_are_never_reused() -> None:
    memo = IdPlanMemo()
    rows = frozenset(f"id-{k:04d}" for k in range(100))
    observed = Observed(0.0, {"Thing": KindObserved("Thing", rows, {}, {})}, 0.0)
    assignment = applied({}, plan({"Thing": POLICY}, observed, memo=memo).ops)
    observed = Observed(0.0, {"Thing": KindObserved("Thing", rows, assignment, {})}, 0.0)
    plan({"Thing": POLICY}, observed, memo=memo)
    hits = memo.hits
    plan({"Thing": POLICY}, observed, memo=memo)
    assert memo.hits == hits
