"""metrics.py: every series pre-created for a kind matches the planner's operation types, and
no series carries a label named `instance` (Prometheus would rename it `exported_instance`)."""

from __future__ import annotations

import typing
from collections.abc import Iterator

import pytest
from prometheus_client import Counter, Gauge, Histogram

from reconciler.domain.model import Op
from reconciler.telemetry import metrics

KIND = "LabelCheckKind"  # a kind no other test uses: its series are removed afterwards
INSTANCE = "i-label-check"

# Families whose series are per instance: each must show `instance_id` on its samples.
PER_INSTANCE = {
    "reconciler_instance_used",
    "reconciler_instance_capacity",
    "reconciler_pod_phase",
    "reconciler_pod_cpu_usage_cores",
    "reconciler_pod_memory_usage_bytes",
    "reconciler_heartbeat_age_seconds",
}


def test_op_types_are_the_models_operations() -> None:
    assert set(metrics.OP_TYPES) == {t.__name__ for t in typing.get_args(Op)}


@pytest.fixture
def every_labelled_family_has_a_series() -> Iterator[None]:
    """One series in every labelled family, made the way the daemon makes them; removed
    afterwards (the registry is the process's own, shared with other tests)."""
    per_instance = {
        metrics.INSTANCE_USED: {(INSTANCE,): 1},
        metrics.INSTANCE_COUNT: {(INSTANCE,): 2},
        metrics.POD_PHASE: {(INSTANCE, "Running"): 1},
        metrics.POD_CPU: {(INSTANCE,): 0.1},
        metrics.POD_MEMORY: {(INSTANCE,): 1e6},
        metrics.HEARTBEAT_AGE: {(INSTANCE,): 1},
    }
    others: list[tuple[Counter | Gauge, dict[str, str]]] = [
        *(
            (gauge, {"resource": KIND})
            for gauge in (
                metrics.ROWS,
                metrics.INSTANCES,
                metrics.UNASSIGNED,
                metrics.OVER_CAPACITY,
                metrics.VALVE_ENGAGED,
                metrics.KIND_DEGRADED,
                metrics.SCALE_DESIRED,
            )
        ),
        (metrics.SCALE_LIMITED, {"resource": KIND, "factor": "cpu"}),
        (metrics.TICKS, {"trigger": "label-check"}),
        (metrics.DB_ID_READS, {"table": "LabelCheckTable"}),
        (metrics.SOURCE_UP, {"source": "label-check"}),
        (metrics.EVENTS, {"source": "label-check"}),
        (metrics.EVENTS_MALFORMED, {"source": "label-check"}),
        (metrics.EVENTS_IGNORED, {"source": "label-check", "reason": "label-check"}),
        (metrics.EVENTS_REJECTED, {"source": "label-check", "reason": "label-check"}),
        (metrics.POLICY_INFO, {"sha256": "label-check"}),
        (metrics.LEADER, {"identity": "label-check"}),
    ]
    metrics.init_kind(KIND)
    for gauge, values in per_instance.items():
        metrics.publish(gauge, KIND, values)
    for metric, labels in others:
        metric.labels(**labels)  # a label name the metric lacks raises here
    yield
    for gauge in per_instance:
        metrics.publish(gauge, KIND, {})
    for metric, labels in others:
        metric.remove(*labels.values())
    for op in metrics.OP_TYPES:
        for result in metrics.OP_RESULTS:
            metrics.OPERATIONS.remove(KIND, op, result)
    metrics.IDS_MOVED.remove(KIND)


@pytest.mark.usefixtures("every_labelled_family_has_a_series")
def test_per_instance_series_are_labelled_instance_id_never_instance() -> None:
    samples = {family.name: family.samples for family in metrics.REGISTRY.collect()}
    defined = {
        family.name
        for metric in vars(metrics).values()
        if isinstance(metric, Counter | Gauge | Histogram)
        for family in metric.describe()
    }
    labels = {
        name: {label for s in family for label in s.labels} for name, family in samples.items()
    }

    # Every metric metrics.py defines is exported, and each has a series whose labels can be
    # seen: a new labelled metric needs one in the fixture above.
    assert len(defined) >= 30, defined
    assert defined <= samples.keys(), defined - samples.keys()
    assert [name for name, family in samples.items() if not family] == []
    assert {name for name, seen in labels.items() if "instance" in seen} == set()
    assert {name for name, seen in labels.items() if "instance_id" in seen} == PER_INSTANCE
