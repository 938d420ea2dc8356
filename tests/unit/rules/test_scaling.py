"""Elastic scaling, pure (scaling.py) and the autoscaler's bookkeeping with a fake source."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from reconciler.adapters.kube.client import MetricsUnavailable
from reconciler.domain.model import Instance, Moment, NodeCapacity, Pod, PodUsage
from reconciler.domain.podspec import PodTemplate
from reconciler.policy.schema import AutoscalePolicy, KindPolicy
from reconciler.policy.templates import load_pod_template
from reconciler.reconcile.autoscale import Autoscaler
from reconciler.rules.capacity import Room, claim, fit_on_nodes
from reconciler.rules.scale_decision import Decision, PodSample, Recommendation, limit_to_room
from reconciler.rules.scaling import decide, prune, recommend, stabilize

NOW = 1_700_000_000.0
CPU, MEM = 250.0, 256 * 2**20  # the iota-dac template's requests
GI = 2**30
ROOT = Path(__file__).resolve().parents[3]


def auto(**kw: object) -> AutoscalePolicy:
    base: dict[str, object] = {"cpu_target_percent": 50, "memory_target_percent": 50}
    return AutoscalePolicy(**{**base, **kw})  # type: ignore[arg-type]


def pods(
    n: int,
    cpu_pct: float,
    mem_pct: float,
    *,
    at: float = NOW - 10,
    running: bool = True,
    start: int = 0,
) -> list[PodSample]:
    """n pods using cpu_pct / mem_pct of their requests, sampled at `at`."""
    usage = PodUsage(CPU * cpu_pct / 100, MEM * mem_pct / 100, at, 30.0)
    return [PodSample(f"p{i}", running, CPU, MEM, usage) for i in range(start, start + n)]


def no_metrics(n: int, start: int = 0, running: bool = True) -> list[PodSample]:
    return [PodSample(f"p{i}", running, CPU, MEM, None) for i in range(start, start + n)]


def node(name: str, cpu_m: float, mem: float, used_cpu: float = 0, used_mem: float = 0,
         schedulable: bool = True) -> NodeCapacity:  # fmt: skip
    return NodeCapacity(name, cpu_m, mem, used_cpu, used_mem, schedulable)


def run(
    policy: AutoscalePolicy,
    current: int,
    samples: list[PodSample],
    *,
    history: list[tuple[float, int]] | None = None,
    row_minimum: int = 1,
    max_instances: int = 100,
    now: float = NOW,
) -> Decision:
    """recommend + decide as the autoscaler does; by default the same recommendation has
    held for an hour (the windows do not hold it back)."""
    rec = recommend(policy, current, samples, now)
    past = history if history is not None else [(now - 3600, rec.desired)]
    return decide(
        policy,
        rec,
        [*past, (now, rec.desired)],
        now,
        row_minimum=row_minimum,
        max_instances=max_instances,
    )


# --------------------------------------------------------------------------- recommend


def test_cpu_at_twice_the_target_doubles_the_instances() -> None:
    rec = recommend(auto(), 5, pods(5, cpu_pct=100, mem_pct=50), NOW)
    assert rec.desired == 10
    assert rec.factor is None
    cpu, mem = rec.metrics
    assert (cpu.metric, cpu.utilisation_percent, cpu.desired) == ("cpu", 100.0, 10)
    assert (mem.metric, mem.desired, mem.within_tolerance) == ("memory", 5, True)


def test_memory_only_pressure_doubles_the_instances() -> None:
    rec = recommend(auto(), 5, pods(5, cpu_pct=50, mem_pct=100), NOW)
    assert rec.desired == 10
    assert [m.desired for m in rec.metrics] == [5, 10]


def test_the_larger_metric_wins() -> None:
    rec = recommend(auto(), 4, pods(4, cpu_pct=75, mem_pct=150), NOW)
    assert [m.desired for m in rec.metrics] == [6, 12]
    assert rec.desired == 12


def test_inside_the_tolerance_nothing_changes() -> None:
    # 54% and 46% of a 50% target: ratios 1.08 and 0.92, inside the 10% band.
    rec = recommend(auto(), 5, pods(5, cpu_pct=54, mem_pct=46), NOW)
    assert rec.desired == 5
    assert rec.factor == "tolerance"
    assert all(m.within_tolerance for m in rec.metrics)
    # Just outside the band: 56% -> ratio 1.12 -> ceil(5.6) = 6.
    assert recommend(auto(), 5, pods(5, cpu_pct=56, mem_pct=50), NOW).desired == 6


def test_tolerance_is_configurable() -> None:
    assert recommend(auto(tolerance=0.3), 5, pods(5, 60, 50), NOW).desired == 5
    assert recommend(auto(tolerance=0.0), 5, pods(5, 52, 50), NOW).desired == 6


def test_low_usage_recommends_fewer() -> None:
    rec = recommend(auto(), 10, pods(10, cpu_pct=10, mem_pct=20), NOW)
    assert [m.desired for m in rec.metrics] == [2, 4]
    assert rec.desired == 4


def test_float_noise_does_not_add_an_instance() -> None:
    samples = [
        PodSample(f"p{i}", True, 300, MEM, PodUsage(0.3, MEM / 2, NOW, 30)) for i in range(5)
    ]
    policy = AutoscalePolicy(cpu_target_percent=0.05)  # 0.1% used / 0.05% target = 2.0(000004)
    assert recommend(policy, 5, samples, NOW).desired == 10


def test_only_configured_metrics_count() -> None:
    rec = recommend(AutoscalePolicy(memory_target_percent=80), 5, pods(5, 500, 80), NOW)
    assert [m.metric for m in rec.metrics] == ["memory"]
    assert rec.desired == 5


def test_no_pod_metrics_means_no_action_with_the_reason() -> None:
    rec = recommend(auto(), 5, no_metrics(5), NOW)
    assert rec.desired == 5
    assert rec.factor == "no-metrics"
    assert all(m.desired is None for m in rec.metrics)
    assert "no pod metrics for 5 Running pods" in (rec.note or "")


def test_stale_metrics_mean_no_action_with_the_reason() -> None:
    stale = pods(5, cpu_pct=300, mem_pct=10, at=NOW - 600)  # metricsMaxAgeSeconds 120
    rec = recommend(auto(), 5, stale, NOW)
    assert (rec.desired, rec.factor) == (5, "no-metrics")
    assert "stale (600s old, max 120s)" in (rec.note or "")
    # Within the allowed age the same samples act.
    assert recommend(auto(metrics_max_age_seconds=900), 5, stale, NOW).desired == 30


def test_a_missing_metric_blocks_scale_down_but_not_scale_up() -> None:
    # Memory is not requested: its utilisation is undefined, so it recommends nothing.
    def samples(cpu_pct: float) -> list[PodSample]:
        u = PodUsage(CPU * cpu_pct / 100, MEM, NOW, 30)
        return [PodSample(f"p{i}", True, CPU, 0, u) for i in range(6)]

    down = recommend(auto(), 6, samples(10), NOW)
    assert (down.desired, down.factor) == (6, "no-metrics")
    assert "no scale-down while memory: pods request no memory" in (down.note or "")
    up = recommend(auto(), 6, samples(100), NOW)
    assert (up.desired, up.factor) == (12, None)


def test_pods_not_running_are_left_out_of_the_average() -> None:
    # A Pending pod's (bogus) usage is ignored; scaling up it counts as idle, like HPA.
    busy = pods(4, cpu_pct=100, mem_pct=50)
    pending = [PodSample("p4", False, CPU, MEM, PodUsage(0, 0, NOW, 30))]
    rec = recommend(auto(), 5, busy + pending, NOW)
    cpu = rec.metrics[0]
    assert cpu.utilisation_percent == 100.0  # the average of the Running pods only
    assert cpu.pods_measured == 4 and cpu.pods_not_running == 1
    assert cpu.ratio == pytest.approx(1.6)  # 4 x 250m over 5 pods' requests, / 50%
    assert rec.desired == 8
    assert "1 not Running counted as idle" in (cpu.note or "")


def test_pods_not_running_do_not_stop_a_scale_down() -> None:
    rec = recommend(auto(), 10, pods(8, 10, 10) + no_metrics(2, start=8, running=False), NOW)
    assert rec.desired == 2  # ceil(10 x 10/50)


def test_running_pods_without_metrics_count_as_idle_up_and_at_target_down() -> None:
    up = recommend(auto(), 4, pods(2, 100, 50) + no_metrics(2, start=2), NOW)
    assert up.metrics[0].ratio == pytest.approx(1.0)  # 2 busy + 2 idle = target: no change
    assert up.desired == 4
    down = recommend(auto(), 4, pods(2, 10, 50) + no_metrics(2, start=2), NOW)
    # (2 x 10% + 2 x 50%) / 4 = 30% -> ratio 0.6 -> ceil(2.4) = 3, not ceil(4 x 0.2) = 1.
    assert down.metrics[0].ratio == pytest.approx(0.6)
    assert down.metrics[0].desired == 3


def test_no_running_pods_is_no_action() -> None:
    rec = recommend(auto(), 3, no_metrics(3, running=False), NOW)
    assert (rec.desired, rec.factor) == (3, "no-metrics")
    assert "no Running pods" in (rec.note or "")


# --------------------------------------------------------------------------- windows


def test_no_scale_down_before_the_window_ends() -> None:
    policy = auto(scale_down_window_seconds=300)
    hist = [(NOW - 400, 10), (NOW - 200, 10)]  # high until 200 s ago
    # 100 s of low recommendations: the high one 200 s ago is inside the window.
    d = run(policy, 10, pods(10, 10, 10), history=hist)
    assert d.desired == 2
    assert (d.final, d.factor) == (10, "stabilization")
    # 300 s after the last high one: down to the highest of the window's recommendations.
    later = [(NOW - 400, 10), (NOW - 300, 6), (NOW - 100, 4)]
    d = run(policy, 10, pods(10, 10, 10), history=later)
    assert (d.final, d.factor) == (6, "stabilization")
    d = run(policy, 10, pods(10, 10, 10), history=[(NOW - 301, 2), (NOW - 100, 2)])
    assert (d.final, d.factor) == (2, None)


def test_stabilize_is_hpa_max_over_down_window_min_over_up_window() -> None:
    hist = [(NOW - 40, 3), (NOW - 20, 8), (NOW - 10, 5), (NOW, 4)]
    assert stabilize(hist, NOW, 0, 30, current=10) == 8  # down: max of 8, 5, 4 (and 3 in force)
    assert stabilize(hist, NOW, 0, 5, current=10) == 5  # 5 was in force 5 s ago
    assert stabilize(hist, NOW, 0, 0, current=10) == 4
    assert stabilize(hist, NOW, 30, 0, current=1) == 3  # up: min over the up window
    assert stabilize(hist, NOW, 15, 0, current=1) == 4  # 8 (in force 15 s ago), 5, 4
    assert stabilize([], NOW, 0, 300, current=7) == 7


def test_a_fresh_start_does_not_scale_down_before_watching_a_whole_window() -> None:
    # The daemon just (re)started: one low recommendation is no evidence for 300 s.
    d = run(auto(), 10, pods(10, 10, 10), history=[])
    assert (d.final, d.factor) == (10, "stabilization")
    # Scale-up with the default 0 s up window is immediate even then.
    d = run(auto(), 5, pods(5, 100, 50), history=[])
    assert d.final == 10


def test_scale_up_window_delays_scale_up() -> None:
    policy = auto(scale_up_window_seconds=60)
    d = run(policy, 5, pods(5, 100, 50), history=[(NOW - 90, 5), (NOW - 30, 5)])
    assert (d.final, d.factor) == (5, "stabilization")
    d = run(policy, 5, pods(5, 100, 50), history=[(NOW - 90, 5), (NOW - 60, 8)])
    assert d.final == 8  # the lowest recommendation over the minute


def test_prune_keeps_the_window_and_the_entry_in_force_before_it() -> None:
    hist = [(NOW - 500, 1), (NOW - 400, 2), (NOW - 350, 3), (NOW - 100, 4), (NOW, 5)]
    prune(hist, NOW, 300)
    assert hist == [(NOW - 350, 3), (NOW - 100, 4), (NOW, 5)]


# --------------------------------------------------------------------------- bounds


def test_never_above_max_instances() -> None:
    d = run(auto(), 5, pods(5, 300, 50), max_instances=12)
    assert d.desired == 30
    assert (d.final, d.factor) == (12, "max-instances")


def test_max_step_limits_each_decision() -> None:
    d = run(auto(max_step=3), 5, pods(5, 100, 50))
    assert (d.desired, d.final, d.factor) == (10, 8, "max-step")
    d = run(auto(max_step=3), 10, pods(10, 10, 10))
    assert (d.desired, d.final, d.factor) == (2, 7, "max-step")


def test_never_below_the_row_count_minimum() -> None:
    d = run(auto(), 10, pods(10, 10, 10), row_minimum=5)
    assert (d.desired, d.final, d.factor) == (2, 5, "row-minimum")


def test_limits_are_all_recorded_and_the_last_one_named() -> None:
    d = run(auto(max_step=50), 5, pods(5, 400, 50), max_instances=15)
    assert d.limits == ("max-instances",)
    d = run(auto(max_step=4), 5, pods(5, 400, 50), max_instances=15)
    assert (d.final, d.factor, d.limits) == (9, "max-step", ("max-step",))
    d = run(auto(max_step=4), 20, pods(20, 50, 50), max_instances=12)  # maxInstances lowered
    assert (d.final, d.factor, d.limits) == (12, "max-instances", ("tolerance", "max-instances"))


# --------------------------------------------------------------------------- capacity


def test_fit_on_nodes_is_the_sum_of_min_free_over_request() -> None:
    nodes = [
        node("a", 16000, 32 * GI),  # cpu 16000/2000 = 8, mem 32/4 = 8 -> 8
        node("b", 16000, 32 * GI, used_cpu=11000, used_mem=2 * GI),  # cpu 2.5, mem 7.5 -> 2
        node("c", 16000, 32 * GI, used_cpu=1000, used_mem=29 * GI),  # cpu 7.5, mem 0.75 -> 0
        node("d", 16000, 32 * GI, schedulable=False),  # cordoned / NotReady / tainted
        node("e", 4000, 8 * GI, used_cpu=6000, used_mem=1 * GI),  # over-committed: 0, not < 0
    ]
    assert fit_on_nodes(nodes, 2000, 4 * GI) == 10
    assert fit_on_nodes(nodes, 2000, 0) == 8 + 2 + 7 + 0
    assert fit_on_nodes([], 2000, 4 * GI) == 0
    with pytest.raises(ValueError):
        fit_on_nodes(nodes, 0, 0)


@given(
    st.lists(
        st.tuples(
            st.integers(0, 64000),
            st.integers(0, 256),
            st.integers(0, 64000),
            st.integers(0, 256),
            st.booleans(),
        ),
        max_size=8,
    ),
    st.integers(1, 8000),
    st.integers(1, 64),
)
def test_fit_on_nodes_places_what_it_counts(
    raw: list[tuple[int, int, int, int, bool]], cpu: int, mem_gi: int
) -> None:
    """Placing `fit` pods leaves no room for another, and never oversubscribes a node."""
    nodes = [node(f"n{i}", a, b * GI, c, d * GI, s) for i, (a, b, c, d, s) in enumerate(raw)]
    fit = fit_on_nodes(nodes, cpu, mem_gi * GI)
    after = claim(nodes, fit, cpu, mem_gi * GI)
    assert fit_on_nodes(after, cpu, mem_gi * GI) == 0
    for before, n in zip(nodes, after, strict=True):
        added = (n.requested_cpu_m - before.requested_cpu_m) / cpu
        assert added >= 0
        if added:
            assert n.requested_cpu_m <= n.allocatable_cpu_m
            assert n.requested_mem_bytes <= n.allocatable_mem_bytes


def test_scale_up_is_capped_at_what_fits_and_the_shortfall_reported() -> None:
    d = run(auto(), 5, pods(5, 100, 50))
    capped = limit_to_room(d, Room(fit=3, note="3 more fit on 2 schedulable nodes"))
    assert (capped.final, capped.factor, capped.shortfall, capped.fit) == (8, "capacity", 2, 3)
    assert "2 short of room on the nodes" in capped.explain()
    roomy = limit_to_room(d, Room(fit=40))
    assert (roomy.final, roomy.factor, roomy.shortfall, roomy.fit) == (10, None, 0, 40)


def test_pods_not_running_yet_take_room_first() -> None:
    d = run(auto(), 5, pods(5, 100, 50))
    capped = limit_to_room(d, Room(fit=3, pending=2))
    assert (capped.final, capped.shortfall) == (6, 4)


def test_unknown_room_adds_no_pods_but_room_never_holds_back_the_row_minimum() -> None:
    d = run(auto(), 5, pods(5, 100, 50))
    blind = limit_to_room(d, Room(None, known=False, note="node capacity unknown"))
    assert (blind.final, blind.factor, blind.shortfall) == (5, "capacity", 5)
    full = run(auto(), 5, pods(5, 100, 50), row_minimum=7)
    assert limit_to_room(full, Room(fit=0)).final == 7


def test_room_is_not_checked_for_scale_down_or_no_change() -> None:
    d = run(auto(), 10, pods(10, 50, 50))
    assert limit_to_room(d, Room(fit=0)) is d


# --------------------------------------------------------------------------- properties


@given(
    current=st.integers(0, 60),
    cpu_pct=st.floats(0, 1000),
    mem_pct=st.floats(0, 1000),
    row_minimum=st.integers(1, 40),
    max_instances=st.integers(3, 100),
    max_step=st.integers(1, 100),
    fit=st.integers(0, 100),
)
def test_final_is_always_within_bounds(
    current: int,
    cpu_pct: float,
    mem_pct: float,
    row_minimum: int,
    max_instances: int,
    max_step: int,
    fit: int,
) -> None:
    assume(row_minimum <= max_instances)  # size_for never returns more than maxInstances
    policy = auto(max_step=max_step)
    d = limit_to_room(
        run(
            policy,
            current,
            pods(current, cpu_pct, mem_pct),
            row_minimum=row_minimum,
            max_instances=max_instances,
        ),
        Room(fit=fit),
    )
    assert row_minimum <= d.final <= max(max_instances, row_minimum)
    if d.final > max(current, row_minimum):
        assert d.final <= current + max_step
        assert d.final <= current + fit
    if d.final < current:
        assert d.final >= current - max_step or d.final == max_instances


@given(current=st.integers(1, 60), stale=st.booleans())
def test_missing_metrics_never_shrink(current: int, stale: bool) -> None:
    samples = pods(current, 1, 1, at=NOW - 10_000) if stale else no_metrics(current)
    d = run(auto(), current, samples, history=[(NOW - 3600, 1)])
    assert d.final == current
    assert d.factor == "no-metrics"


# --------------------------------------------------------------------------- Autoscaler


@dataclass
class FakeSource:
    templates: dict[str, PodTemplate]
    usage: dict[str, PodUsage] = field(default_factory=dict)
    nodes: list[NodeCapacity] = field(default_factory=list)
    metrics_down: bool = False
    reads: int = 0

    def pod_usage(self, kind: str) -> dict[str, PodUsage]:
        self.reads += 1
        if self.metrics_down:
            raise MetricsUnavailable("metrics.k8s.io/v1beta1 is not served (404)")
        return dict(self.usage)

    def node_capacity(self) -> list[NodeCapacity]:
        return list(self.nodes)


def kind_policy(**autoscale: object) -> KindPolicy:
    return KindPolicy(
        table="Thing",
        instance_name="iota-dac",
        template="t.yml",
        init_instances=3,
        max_instances=20,
        resource_per_instance=5000,
        autoscale=AutoscalePolicy(
            **{"cpu_target_percent": 50, "period_seconds": 15, **autoscale}  # type: ignore[arg-type]
        ),
    )


def moment(wall: float, mono: float | None = None) -> Moment:
    """A pass's instant; by default the monotonic clock moves with the wall clock."""
    return Moment(wall, wall - 1_600_000_000.0 if mono is None else mono)


def fleet_of(n: int) -> tuple[dict[int, Instance], dict[str, Pod]]:
    assignment = {i: Instance(i, frozenset({f"r{i}"}), 10) for i in range(n)}
    pod_map = {f"iota-dac-{i}": Pod(f"iota-dac-{i}", i, "Running") for i in range(n)}
    return assignment, pod_map


@pytest.fixture
def source() -> FakeSource:
    t = load_pod_template("Thing", "iota", "iota-dac", ROOT / "templates/iota-dac/pod-template.yml")
    return FakeSource({"Thing": t}, nodes=[node("a", 16000, 32 * GI)])


def busy(n: int, cpu_pct: float, at: float = NOW) -> dict[str, PodUsage]:
    return {f"iota-dac-{i}": PodUsage(CPU * cpu_pct / 100, MEM / 2, at, 30) for i in range(n)}


def test_autoscaler_sets_the_target_and_decides_once_per_period(source: FakeSource) -> None:
    scaler, targets = Autoscaler(source), {}
    assignment, pod_map = fleet_of(5)
    rows = frozenset({"a"})
    source.usage = busy(5, 100)
    scaler.update("Thing", kind_policy(), rows, assignment, pod_map, moment(NOW), targets)
    assert targets == {"Thing": 10}
    assert scaler.decisions["Thing"].final == 10
    source.usage = busy(5, 400)
    scaler.update("Thing", kind_policy(), rows, assignment, pod_map, moment(NOW + 5), targets)
    assert (targets["Thing"], source.reads) == (10, 1)  # inside the period: no new read
    scaler.update("Thing", kind_policy(), rows, assignment, pod_map, moment(NOW + 15), targets)
    assert (targets["Thing"], source.reads) == (15, 2)  # 5 x 4 = 20, max-step 10 from 5


def test_autoscaler_keeps_the_count_when_the_metrics_api_is_absent(source: FakeSource) -> None:
    scaler, targets = Autoscaler(source), {}
    assignment, pod_map = fleet_of(8)
    source.metrics_down = True
    scaler.update("Thing", kind_policy(), frozenset(), assignment, pod_map, moment(NOW), targets)
    assert targets == {"Thing": 8}  # not the row minimum (3): a missing metric never shrinks
    status = scaler.status("Thing", kind_policy())
    assert status is not None
    assert status["limitedBy"] == "no-metrics"
    assert "pod metrics unavailable" in status["text"]
    assert "count kept" in status["text"]


def test_autoscaler_does_not_scale_up_past_the_nodes(source: FakeSource) -> None:
    scaler, targets = Autoscaler(source), {}
    assignment, pod_map = fleet_of(5)
    source.usage = busy(5, 100)
    # 1000m and 1Gi free: the 250m/256Mi pod fits 4 times.
    source.nodes = [node("a", 16000, 32 * GI, used_cpu=15000, used_mem=31 * GI)]
    scaler.update("Thing", kind_policy(), frozenset(), assignment, pod_map, moment(NOW), targets)
    d = scaler.decisions["Thing"]
    assert (targets["Thing"], d.factor, d.fit, d.shortfall) == (9, "capacity", 4, 1)


def test_two_kinds_do_not_count_the_same_room_twice(source: FakeSource) -> None:
    source.templates["Rule"] = source.templates["Thing"]
    scaler, targets = Autoscaler(source), {}
    assignment, pod_map = fleet_of(5)
    source.usage = busy(5, 100)
    source.nodes = [node("a", 16000, 32 * GI, used_cpu=14500, used_mem=0)]  # 6 fit
    scaler.update("Thing", kind_policy(), frozenset(), assignment, pod_map, moment(NOW), targets)
    scaler.update("Rule", kind_policy(), frozenset(), assignment, pod_map, moment(NOW), targets)
    assert targets == {"Thing": 10, "Rule": 6}
    assert scaler.decisions["Rule"].fit == 1


def test_autoscaler_forgets_a_kind_whose_block_is_removed(source: FakeSource) -> None:
    scaler, targets = Autoscaler(source), {}
    assignment, pod_map = fleet_of(5)
    source.usage = busy(5, 100)
    scaler.update("Thing", kind_policy(), frozenset(), assignment, pod_map, moment(NOW), targets)
    plain = kind_policy().model_copy(update={"autoscale": None})
    scaler.update("Thing", plain, frozenset(), assignment, pod_map, moment(NOW + 30), targets)
    assert targets == {}
    assert scaler.status("Thing", plain) is None


def test_autoscaler_blind_to_zookeeper_keeps_the_last_target(source: FakeSource) -> None:
    scaler, targets = Autoscaler(source), {}
    assignment, pod_map = fleet_of(5)
    source.usage = busy(5, 100)
    scaler.update("Thing", kind_policy(), frozenset(), assignment, pod_map, moment(NOW), targets)
    scaler.update("Thing", kind_policy(), frozenset(), None, pod_map, moment(NOW + 60), targets)
    assert targets == {"Thing": 10}
    scaler.update("Thing", kind_policy(), frozenset(), assignment, None, moment(NOW + 120), targets)
    assert targets == {"Thing": 5}  # pods unknown: the current count, held
    assert scaler.decisions["Thing"].factor == "no-metrics"


def test_recommendation_type_is_plain_data() -> None:
    rec = Recommendation(3, 3, (), "no-metrics", "x")
    d = decide(auto(), rec, [(NOW, 3)], NOW, row_minimum=1, max_instances=10)
    assert d.summary()["text"] == "no metrics: 3 -> 3 (recommended 3), limited by no-metrics; x"


def test_a_backward_wall_clock_step_neither_freezes_the_autoscaler_nor_shortens_its_window(
    source: FakeSource,
) -> None:
    """The wall clock steps back an hour (NTP) between two passes; the monotonic clock goes
    on. Decisions stay due every period, and the scale-down window still lasts its 60 s."""
    scaler, targets = Autoscaler(source), {}
    policy = kind_policy(scale_down_window_seconds=60)
    assignment, pod_map = fleet_of(10)
    rows = frozenset({"a"})
    mono = 1000.0
    source.usage = busy(10, 50)  # at target: 10 instances are right
    for t in range(0, 61, 15):  # an hour watched is not needed: 60 s of history is
        scaler.update("Thing", policy, rows, assignment, pod_map, moment(NOW + t, mono + t),
                      targets)  # fmt: skip
    assert targets == {"Thing": 10}
    stepped = NOW + 75 - 3600  # the wall clock now reads an hour earlier
    # metrics-server's clock did not step: its samples look an hour ahead, and are fresh.
    source.usage = busy(10, 10, at=NOW + 75)
    seen = []
    for t in range(75, 180, 15):
        at = moment(stepped + (t - 75), mono + t)
        scaler.update("Thing", policy, rows, assignment, pod_map, at, targets)
        d = scaler.decisions["Thing"]
        seen.append((t, d.at, d.desired, d.final, d.factor))
    reads = source.reads
    assert reads == 12, seen  # one decision per period, across the step (5 before, 7 after)
    # 10 % CPU: recommended 2; held by the window until every recommendation of the last
    # 60 s (monotonic) was low: from the pass at 75 s, the first allowed is at 75 + 60 s.
    held = [s for s in seen if s[0] < 135]
    assert held and all(final == 10 and factor == "stabilization" for *_, final, factor in held)
    assert next(s for s in seen if s[0] >= 135)[3] < 10, seen
    assert scaler.status("Thing", policy)["at"] == stepped + (165 - 75)  # type: ignore[index]
