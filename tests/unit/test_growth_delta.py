"""growth_delta: planning from the last plan gives exactly what planning from scratch gives."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.domain.model import KindObserved, Observed, WriteInstance, applied
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
