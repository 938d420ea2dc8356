"""The sizing rule's quantities, each in its one home (reconciler/rules/sizing.py): the
instances the rule gives, the capacity it spreads the rows at, and the fewest instances that
hold the rows, which a pin is checked against."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from reconciler.policy.schema import KindPolicy
from reconciler.rules.pinning import pin_problem
from reconciler.rules.sizing import (
    HEADROOM,
    instances_to_hold,
    size_for,
    size_for_layout,
    spec_capacity,
    spec_instances,
    with_headroom,
)


def policy(init: int = 3, max_: int = 100, per: int = 10) -> KindPolicy:
    return KindPolicy(
        table="Thing",
        instance_name="iota-dac",
        template="t.yml",
        init_instances=init,
        max_instances=max_,
        resource_per_instance=per,
    )


def test_the_rule_gives_one_instance_more_than_needed_when_per_divides_the_rows() -> None:
    assert spec_instances(100, 10) == 11  # floor(100 / 10) + 1, as the old orchestrator sized
    assert instances_to_hold(100, 10) == 10  # but ten instances of ten hold them
    assert spec_instances(101, 10) == instances_to_hold(101, 10) == 11
    assert spec_instances(0, 10) == 1 and instances_to_hold(0, 10) == 0


@given(rows=st.integers(0, 100_000), per=st.integers(1, 5000))
def test_instances_to_hold_is_the_fewest_that_hold_every_row(rows: int, per: int) -> None:
    least = instances_to_hold(rows, per)
    assert least * per >= rows
    assert least == 0 or (least - 1) * per < rows
    assert spec_instances(rows, per) in (least, least + 1)


def test_the_capacity_spreads_the_rows_over_every_instance() -> None:
    assert spec_capacity(25, 10) == 3  # floor(25 / 10) + 1: ten instances of three hold them
    sizing = size_for(25, policy(init=10))
    assert (sizing.instances, sizing.capacity, sizing.needed) == (10, 3, 3)


def test_a_pin_below_the_fewest_instances_that_hold_the_rows_is_refused() -> None:
    p = policy(per=10)
    assert pin_problem(p, 100, 10) is None  # ten of ten hold a hundred rows
    assert pin_problem(p, 101, 10) == (
        "10 instances of resourcePerInstance 10 cannot hold 101 rows: at least 11"
    )
    assert pin_problem(p, None, 1) is None  # rows unknown: only maxInstances binds
    assert pin_problem(p, 10_000, 0) is None  # stop: no instance is meant to hold any


def test_a_pinned_kind_too_small_for_its_rows_reports_the_fewest_that_hold_them() -> None:
    sizing = size_for(101, policy(per=10), pinned=10)
    assert (sizing.instances, sizing.capacity) == (10, 10)
    assert sizing.error == "pinned to 10 instances: 101 rows need 11"


# --- size_for_layout: a scale-down leaves room for the next rows ------------------------


def test_the_demos_scale_down_leaves_room_for_the_rows_that_follow() -> None:
    # Rule, 1,205 rows, initInstances 10 -> 4: `rows // 4 + 1` = 302 left 3 free slots and
    # 5 new rows opened instance 4 again. Sized for the rows plus 10%: 332 each, 123 free.
    plain = size_for(1205, policy(init=4, per=5000))
    assert (plain.instances, plain.capacity) == (4, 302)
    sizing = size_for_layout(1205, policy(init=4, per=5000), current=10)
    assert (sizing.instances, sizing.capacity, sizing.error) == (4, 332, None)
    assert sizing.instances * sizing.capacity - 1205 == 123


def test_a_layout_that_grows_or_keeps_its_size_is_sized_by_the_rule_alone() -> None:
    p = policy(init=10, per=5000)
    assert size_for_layout(12_345, p, current=0) == size_for(12_345, p)  # a first layout
    assert size_for_layout(12_345, p, current=10) == size_for(12_345, p)
    assert size_for_layout(25, policy(init=10), current=3) == size_for(25, policy(init=10))


def test_the_headroom_stops_a_scale_down_short_when_the_rows_would_fill_it() -> None:
    # 4,950 rows at 1,000 each: the rule gives 5 instances with 50 free slots; the scale-down
    # from 8 stops at 6, with room for 10% more rows.
    sizing = size_for_layout(4950, policy(init=3, per=1000), current=8)
    assert (sizing.instances, sizing.capacity) == (6, 1000)
    # Never more instances than there are: from 5 it is a re-size at 5, not a scale-up.
    assert size_for_layout(4950, policy(init=3, per=1000), current=5).instances == 5


def test_a_pin_takes_no_headroom() -> None:
    p = policy(init=10, per=5000)
    assert size_for_layout(1205, p, current=10, pinned=4) == size_for(1205, p, pinned=4)


@given(
    rows=st.integers(0, 60_000),
    init=st.integers(1, 20),
    max_=st.integers(20, 40),
    per=st.integers(1, 5000),
    current=st.integers(0, 60),
    target=st.one_of(st.none(), st.integers(1, 60)),
)
def test_property_a_layouts_size_holds_the_rows_and_never_scales_past_the_rule(
    rows: int, init: int, max_: int, per: int, current: int, target: int | None
) -> None:
    p = policy(init=init, max_=max_, per=per)
    rule = size_for(rows, p, target)
    sizing = size_for_layout(rows, p, current, target)
    assert 1 <= sizing.capacity <= per
    assert sizing.error == rule.error
    assert sizing.instances <= max_
    if rule.error is not None or rule.instances >= current:
        assert sizing == rule  # only a scale-down is changed
        return
    # A scale-down: no further than the rule, never up, every row held...
    assert rule.instances <= sizing.instances <= current
    assert sizing.instances * sizing.capacity > rows
    # ...with room for HEADROOM more rows, unless it kept every instance or went full.
    if sizing.instances < current and sizing.capacity < per:
        assert sizing.instances * sizing.capacity - rows >= rows * HEADROOM


def test_with_headroom_adds_a_tenth_rounded_up() -> None:
    assert (with_headroom(0), with_headroom(1), with_headroom(1205)) == (0, 2, 1326)
