"""Capacity under the namespace's ResourceQuota (reconciler/rules/capacity.py, growth.py and
the planner): an instance opens only with a pod the quota admits; what the admitted
instances cannot hold stays unassigned and is reported."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from reconciler.domain.model import (
    NO_INTENT,
    Assignment,
    CreatePod,
    DeleteInstance,
    KindIntent,
    KindObserved,
    Pod,
    WriteInstance,
)
from reconciler.domain.model import applied as apply
from reconciler.domain.quota import NO_QUOTA, QuotaRoom
from reconciler.policy.schema import KindPolicy
from reconciler.reconcile.planner import plan_kind
from reconciler.rules.capacity import QUOTA_ERROR, admit_sizing, fit_in_quota
from reconciler.rules.growth import growth_limit
from reconciler.rules.sizing import Sizing

NOW = 1_700_000_000.0
MI = 2**20
POLICY = KindPolicy(
    table="Rule",
    instance_name="iota-rules-engine",
    template="t.yml",
    init_instances=3,
    max_instances=100,
    resource_per_instance=500,
)


def rows(n: int) -> frozenset[str]:
    return frozenset(f"id-{i:06d}" for i in range(n))


def pods_for(instances: range | list[int]) -> dict[str, Pod]:
    return {
        f"iota-rules-engine-{i}": Pod(f"iota-rules-engine-{i}", i, "Running", started_at=NOW)
        for i in instances
    }


def plan_once(
    a: Assignment, n_rows: int, pods: dict[str, Pod], limit: int | None
) -> tuple[Assignment, list[object], object]:
    obs = KindObserved("Rule", rows(n_rows), a, pods, None)
    ops, report = plan_kind(POLICY, obs, NOW, KindIntent(pod_limit=limit))
    return apply(a, ops), ops, report


def three_instances(n_rows: int = 450) -> Assignment:
    a, _, _ = plan_once({}, n_rows, {}, None)
    assert len(a) == 3
    return a


# --- fit_in_quota ---------------------------------------------------------------------


def test_no_quota_limits_nothing() -> None:
    assert fit_in_quota(NO_QUOTA, 250, 256 * MI) is None


def test_the_fit_is_the_least_of_pods_cpu_and_memory_left() -> None:
    room = QuotaRoom(pods=10, cpu_m=1000, mem_bytes=4096 * MI)
    assert fit_in_quota(room, 250, 256 * MI) == 4  # CPU: 1000m / 250m
    assert fit_in_quota(room, 100, 1024 * MI) == 4  # memory: 4Gi / 1Gi
    assert fit_in_quota(room, 10, MI) == 10  # pods


def test_a_dimension_the_pod_requests_nothing_of_does_not_limit_it() -> None:
    assert fit_in_quota(QuotaRoom(cpu_m=0), 0, 256 * MI) is None
    assert fit_in_quota(QuotaRoom(cpu_m=0, pods=2), 0, 256 * MI) == 2


def test_float_noise_does_not_lose_a_pod() -> None:
    assert fit_in_quota(QuotaRoom(cpu_m=0.3 * 1000), 0.1 * 1000, 0) == 3


def test_a_quota_used_past_its_hard_limit_admits_none() -> None:
    assert fit_in_quota(QuotaRoom(pods=-2), 250, 0) == 0


# --- admit_sizing -----------------------------------------------------------------------


def test_sizing_within_the_limit_is_unchanged() -> None:
    sizing = Sizing(4, 400, None, 4)
    assert admit_sizing(sizing, POLICY, 4, 1500) is sizing
    assert admit_sizing(sizing, POLICY, None, 1500) is sizing


def test_sizing_over_the_limit_fills_the_admitted_instances_and_reports_the_rest() -> None:
    capped = admit_sizing(Sizing(9, 500, None, 9), POLICY, 3, 4000)
    assert (capped.instances, capped.capacity) == (3, POLICY.resource_per_instance)
    assert capped.error is not None and capped.error.startswith(QUOTA_ERROR)
    assert "2500 ids unassigned" in capped.error


def test_sizing_over_the_limit_that_still_holds_every_row_reports_nothing() -> None:
    capped = admit_sizing(Sizing(5, 21, None, 1), POLICY, 2, 100)
    assert (capped.instances, capped.capacity, capped.error) == (2, 500, None)


# --- growth_limit -----------------------------------------------------------------------


def test_a_held_layout_grows_no_further_than_the_quota_admits() -> None:
    held = {0: 500, 1: 500, 2: 500}
    assert growth_limit(POLICY, KindIntent(pod_limit=5), held, 1200) == 5
    assert growth_limit(POLICY, NO_INTENT, held, 1200) == POLICY.max_instances


def test_a_layout_with_more_instances_than_admitted_pods_is_not_held() -> None:
    assert growth_limit(POLICY, KindIntent(pod_limit=2), {0: 500, 1: 500, 2: 500}, 900) is None


# --- the planner ------------------------------------------------------------------------


def test_quota_at_the_pod_count_adds_no_instance_and_fills_the_existing_ones() -> None:
    a = three_instances()  # 450 rows on 3 instances of count 151
    after, ops, report = plan_once(a, 450 + 1350, pods_for(range(3)), limit=3)
    assert sorted(after) == [0, 1, 2]
    assert not [o for o in ops if isinstance(o, CreatePod)]
    assert {len(inst.ids) for inst in after.values()} == {POLICY.resource_per_instance}
    assert {inst.count for inst in after.values()} == {POLICY.resource_per_instance}
    assert report.unassigned == 1800 - 1500  # type: ignore[attr-defined]
    assert report.error.startswith(QUOTA_ERROR)  # type: ignore[attr-defined]
    # Sticky: the ids the instances held stay where they were.
    for i in a:
        assert a[i].ids <= after[i].ids


def test_the_capped_plan_is_stable_from_one_pass_to_the_next() -> None:
    a = three_instances()
    after, _, _ = plan_once(a, 1800, pods_for(range(3)), limit=3)
    again, ops, report = plan_once(after, 1800, pods_for(range(3)), limit=3)
    assert ops == [] and again == after
    assert report.unassigned == 300  # type: ignore[attr-defined]


def test_room_for_two_more_pods_opens_two_instances_and_no_more() -> None:
    a = three_instances()
    after, ops, report = plan_once(a, 3000, pods_for(range(3)), limit=5)  # 3000 rows: 7 wanted
    assert sorted(after) == [0, 1, 2, 3, 4]
    creates = [o for o in ops if isinstance(o, CreatePod)]
    assert creates == [CreatePod("Rule", 3), CreatePod("Rule", 4)]
    assert sum(len(inst.ids) for inst in after.values()) == 5 * 500
    assert report.unassigned == 500  # type: ignore[attr-defined]


def test_room_for_more_than_the_rows_need_opens_only_what_they_need() -> None:
    a = three_instances()
    after, _, report = plan_once(a, 1800, pods_for(range(3)), limit=9)
    assert len(after) == 4 and report.unassigned == 0  # type: ignore[attr-defined]


def test_instances_left_without_a_pod_give_their_ids_back_to_instances_with_pods() -> None:
    """A create refused anyway: nine instances, pods for three; the next plan keeps the
    three and their pods, and deletes the six podless instances."""
    a = three_instances()
    grown, _, _ = plan_once(a, 1800, pods_for(range(3)), limit=None)
    assert len(grown) > 3
    after, ops, report = plan_once(grown, 1800, pods_for(range(3)), limit=3)
    assert sorted(after) == [0, 1, 2]
    deleted = sorted(o.instance_id for o in ops if isinstance(o, DeleteInstance))
    assert deleted == sorted(set(grown) - {0, 1, 2})
    assert not [o for o in ops if isinstance(o, CreatePod)]
    placed = [rid for inst in after.values() for rid in inst.ids]
    assert len(placed) == len(set(placed)) == 1500
    assert report.unassigned == 300  # type: ignore[attr-defined]


def test_when_the_quota_is_lifted_the_instances_and_their_pods_come_together() -> None:
    a = three_instances()
    capped, _, _ = plan_once(a, 1800, pods_for(range(3)), limit=3)
    after, ops, report = plan_once(capped, 1800, pods_for(range(3)), limit=None)
    new = sorted(set(after) - set(capped))
    assert new and report.unassigned == 0  # type: ignore[attr-defined]
    writes = {o.instance.instance_id for o in ops if isinstance(o, WriteInstance) and o.create}
    creates = {o.instance_id for o in ops if isinstance(o, CreatePod)}
    assert writes == creates == set(new)


@given(
    extra=st.integers(0, 3000),
    pods=st.integers(0, 6),
    room=st.integers(0, 4),
)
def test_no_instance_is_planned_beyond_the_pods_the_quota_admits(
    extra: int, pods: int, room: int
) -> None:
    a = three_instances()
    limit = 3 + room
    after, _, report = plan_once(a, 450 + extra, pods_for(range(min(pods, 3))), limit)
    assert len(after) <= max(limit, 0)
    placed = sum(len(inst.ids) for inst in after.values())
    assert placed + report.unassigned == 450 + extra  # type: ignore[attr-defined]
    assert all(len(inst.ids) <= POLICY.resource_per_instance for inst in after.values())
