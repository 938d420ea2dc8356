"""The safety valve counts as unassigned exactly the ids a plan takes off instances and
gives to none, whatever the layout (its ranges of ids apart or interleaved)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.domain.ids import SortedIds
from reconciler.domain.model import DeleteInstance, Instance, Reason, WriteInstance, applied
from reconciler.rules.valve import ValveLimits, judge

IDS = [f"id-{k:03d}" for k in range(120)]


@st.composite
def plans(draw: st.DrawFn) -> tuple[dict[int, Instance], list[WriteInstance | DeleteInstance]]:
    owner = draw(st.lists(st.integers(0, 5), min_size=len(IDS), max_size=len(IDS)))
    current = {
        i: Instance(i, SortedIds(x for x, o in zip(IDS, owner, strict=True) if o == i), 200)
        for i in range(6)
    }
    new_owner = draw(st.lists(st.integers(-1, 6), min_size=len(IDS), max_size=len(IDS)))
    ops: list[WriteInstance | DeleteInstance] = []
    for i in range(7):
        ids = SortedIds(x for x, o in zip(IDS, new_owner, strict=True) if o == i)
        if i in current and draw(st.booleans()) and not ids:
            ops.append(DeleteInstance("Thing", i))
        elif i not in current or ids != current[i].ids:
            ops.append(
                WriteInstance("Thing", Instance(i, ids, 200), i not in current, Reason.IDS_CHANGED)
            )
    return current, ops


@settings(max_examples=300, deadline=None)
@given(plan=plans())
def test_unassigned_is_what_no_instance_holds_after_the_plan(
    plan: tuple[dict[int, Instance], list[WriteInstance | DeleteInstance]],
) -> None:
    current, ops = plan
    after = applied(current, ops)
    before_ids = set().union(*(inst.ids for inst in current.values()))
    after_ids = set().union(*(inst.ids for inst in after.values()))
    verdict = judge(current, ops, ValveLimits())
    assert verdict.unassigned == len(before_ids - after_ids)
    assert verdict.assigned == len(before_ids)
