"""The sizing rule's quantities, each in its one home (reconciler/rules/sizing.py): the
instances the rule gives, the capacity it spreads the rows at, and the fewest instances that
hold the rows, which a pin is checked against."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from reconciler.policy.schema import KindPolicy
from reconciler.rules.pinning import pin_problem
from reconciler.rules.sizing import instances_to_hold, size_for, spec_capacity, spec_instances


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
