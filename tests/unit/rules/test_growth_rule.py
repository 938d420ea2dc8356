"""The seed's growth rule in its one home (reconciler/rules/growth.py): whether a layout is
held (`growth_limit`), where new ids go and when an instance opens (`grow`), and the slack
(`fill_slack`) every path fills with."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from reconciler.domain.ids import SortedIds
from reconciler.domain.model import NO_INTENT, KindIntent
from reconciler.policy.schema import AutoscalePolicy, KindPolicy
from reconciler.rules.growth import fill_slack, grow, growth_limit, target_in_force
from reconciler.rules.sizing import size_for

POLICY = KindPolicy(
    table="Thing",
    instance_name="iota-dac",
    template="t",
    resource_per_instance=40,
    init_instances=3,
    max_instances=12,
)
AUTOSCALED = POLICY.model_copy(update={"autoscale": AutoscalePolicy(cpu_target_percent=50)})
HELD = {0: 40, 1: 40, 2: 40, 3: 40}  # four instances at the policy's count


# --- growth_limit: whether the layout is held, and how far it may grow --------------------


def test_a_layout_within_the_rules_is_held_and_may_grow_to_max_instances() -> None:
    assert growth_limit(POLICY, NO_INTENT, HELD, 100) == POLICY.max_instances


def test_a_rebalance_a_resize_or_no_instance_at_all_re_sizes_in_full() -> None:
    assert growth_limit(POLICY, KindIntent(rebalance=True), HELD, 100) is None
    assert growth_limit(POLICY, KindIntent(resize=True), HELD, 100) is None
    assert growth_limit(POLICY, NO_INTENT, {}, 100) is None


def test_a_layout_that_breaks_the_sizing_rules_is_not_held() -> None:
    assert growth_limit(POLICY, NO_INTENT, {0: 40, 1: 40}, 10) is None  # below initInstances
    assert growth_limit(POLICY, NO_INTENT, dict.fromkeys(range(13), 40), 10) is None  # above max
    assert growth_limit(POLICY, NO_INTENT, {**HELD, 3: 41}, 10) is None  # count above per
    assert growth_limit(POLICY, NO_INTENT, {**HELD, 3: 0}, 10) is None  # count of 0


def test_a_pinned_layout_is_held_only_at_its_pin_and_never_grows_past_it() -> None:
    assert growth_limit(POLICY, KindIntent(pinned=4), HELD, 100) == 4
    assert growth_limit(POLICY, KindIntent(pinned=5), HELD, 100) is None


def test_an_autoscaling_target_holds_the_layout_only_at_the_count_it_sizes_to() -> None:
    at_four = size_for(100, AUTOSCALED, 4).instances
    assert at_four == 4
    assert growth_limit(AUTOSCALED, KindIntent(scale_target=4), HELD, 100) == 12
    assert growth_limit(AUTOSCALED, KindIntent(scale_target=6), HELD, 100) is None


def test_a_target_left_over_from_a_removed_autoscale_block_asks_for_nothing() -> None:
    # The same intent under a policy without `autoscale`: the target is not in force.
    assert growth_limit(POLICY, KindIntent(scale_target=6), HELD, 100) == POLICY.max_instances
    assert target_in_force(POLICY, KindIntent(scale_target=6)) is None
    assert target_in_force(AUTOSCALED, KindIntent(scale_target=6)) == 6


# --- fill_slack ------------------------------------------------------------------------


def test_the_slack_is_a_twentieth_of_the_capacity_and_at_least_one() -> None:
    assert [fill_slack(c) for c in (1, 19, 20, 40, 5000)] == [1, 1, 1, 2, 250]


# --- grow: where new ids go, when an instance opens -------------------------------------


def test_new_ids_go_to_the_least_loaded_instance_with_room() -> None:
    held: dict[int, object] = {0: {"a", "b"}, 1: {"c"}}
    counts = {0: 3, 1: 3}
    assert grow(held, counts, ["d"], limit=5)  # type: ignore[arg-type]
    assert held == {0: {"a", "b"}, 1: {"c", "d"}} and counts == {0: 3, 1: 3}


def test_what_finds_no_room_opens_the_smallest_free_instance_at_the_largest_count() -> None:
    held: dict[int, object] = {1: SortedIds(["a", "b"]), 3: SortedIds(["c"])}
    counts = {1: 2, 3: 2}
    assert grow(held, counts, ["d", "e", "f", "g"], limit=5)  # type: ignore[arg-type]
    # "d" fills instance 3; the rest opens 0 (two ids, the count) and then 2.
    assert held == {1: {"a", "b"}, 3: {"c", "d"}, 0: {"e", "f"}, 2: {"g"}}
    assert counts == {1: 2, 3: 2, 0: 2, 2: 2}


def test_growth_past_the_limit_is_refused() -> None:
    held: dict[int, object] = {0: SortedIds(["a"])}
    assert not grow(held, {0: 1}, ["b", "c"], limit=2)  # type: ignore[arg-type]


def test_no_new_id_changes_nothing() -> None:
    ids = SortedIds(["a"])
    held: dict[int, object] = {0: ids}
    assert grow(held, {0: 1}, [], limit=1)  # type: ignore[arg-type]
    assert held[0] is ids


@given(
    loads=st.lists(st.integers(0, 40), min_size=1, max_size=8),
    new=st.integers(0, 300),
    limit=st.integers(1, 12),
)
def test_grow_places_every_id_once_within_counts_or_refuses(
    loads: list[int], new: int, limit: int
) -> None:
    held: dict[int, object] = {
        i: SortedIds(f"{i}-{k:03d}" for k in range(n)) for i, n in enumerate(loads)
    }
    counts = dict.fromkeys(held, 40)
    before = sum(loads)
    pool = [f"new-{k:04d}" for k in range(new)]
    if not grow(held, counts, pool, max(limit, len(loads))):  # type: ignore[arg-type]
        assert before + new > 40 * max(limit, len(loads))  # only when no room is left
        return
    placed = [x for ids in held.values() for x in ids]  # type: ignore[attr-defined]
    assert len(placed) == len(set(placed)) == before + new
    assert all(len(ids) <= counts[i] for i, ids in held.items())  # type: ignore[arg-type]
