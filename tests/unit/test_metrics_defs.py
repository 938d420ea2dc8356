"""metrics.py: every series pre-created for a kind matches the planner's operation types."""

from __future__ import annotations

import typing

from reconciler.domain.model import Op
from reconciler.telemetry import metrics


def test_op_types_are_the_models_operations() -> None:
    assert set(metrics.OP_TYPES) == {t.__name__ for t in typing.get_args(Op)}


def test_per_instance_series_are_labelled_instance_id_never_instance() -> None:
    for collector in metrics.REGISTRY._collector_to_names:
        labels = getattr(collector, "_labelnames", ())
        assert "instance" not in labels, collector
