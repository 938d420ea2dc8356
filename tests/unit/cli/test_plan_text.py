"""`reconciler plan`'s text (reconciler/cli/main.py `_print_plan`): what it says agrees with
what the running daemon says about itself."""

from __future__ import annotations

import pytest


def test_plan_says_heartbeats_are_read_by_the_daemon_not_disabled_when_kafka_is_set(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`plan` builds no heartbeat consumer: with a Kafka bootstrap set, the planner's
    "disabled" would contradict the daemon's own status."""
    from types import SimpleNamespace

    from reconciler.cli.main import _print_plan

    report = SimpleNamespace(
        rows=3, instances=1, capacity=5, unassigned=0, moved=0, blind=(), error=None,
        heartbeat_note="heartbeat source disabled: silence is not acted on",
    )  # fmt: skip
    result = SimpleNamespace(plan=SimpleNamespace(reports={"Thing": report}, ops=()))
    _print_plan(result, "kafka:9092")
    out = capsys.readouterr().out
    assert "heartbeats: read by the running daemon from Kafka kafka:9092, not by `plan`" in out
    assert "disabled" not in out
    _print_plan(result, "")
    assert "heartbeats: heartbeat source disabled" in capsys.readouterr().out
