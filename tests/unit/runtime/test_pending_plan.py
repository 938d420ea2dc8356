"""Observe-only passes and the pending plan (reconciler/runtime/pending.py) on the in-memory
FAKES of the ports (tests/support/fakes.py): an observe-only pass applies nothing whoever leads,
what it plans is pending, the gauge and `GET /v1/plan`'s document say the same, and the log
says when it changes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from prometheus_client import generate_latest
from structlog.testing import capture_logs

from reconciler.domain.errors import NotLeader, SourceUnavailable
from reconciler.runtime.observe_only import refuse_writes
from reconciler.runtime.pending import PendingPlan, describe, kind_plans, plan_document
from reconciler.telemetry import metrics
from tests.support.pass_world import World

OPS = set(metrics.OP_TYPES)


def gauge(kind: str) -> dict[str, float]:
    """reconciler_pending_operations{resource=kind} by op, as /metrics shows it."""
    out: dict[str, float] = {}
    for family in metrics.REGISTRY.collect():
        if family.name == "reconciler_pending_operations":
            for s in family.samples:
                if s.labels["resource"] == kind:
                    out[s.labels["op"]] = s.value
    return out


def test_an_observe_only_pass_plans_and_applies_nothing(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.ports.observe_only = True
    result = world.run()
    assert result.standby and result.outcomes == ()
    assert len(result.plan.ops) > 0  # a fresh world: instances and pods to create
    assert world.store.writes == 0 and world.pods.creates == 0 and world.events.recorded == []
    # and again: nothing it planned was recorded as done, so it plans the same again
    assert world.run().plan.ops == result.plan.ops


def test_observe_only_applies_nothing_even_where_it_would_lead(tmp_path: Path) -> None:
    class Leading:
        identity, transitions = "me", 1
        is_leader = True

        def may_act(self) -> bool:
            return True

        def leader(self) -> str:
            return "me"

    world = World(tmp_path)
    world.ports.leadership = Leading()
    world.ports.observe_only = True
    assert world.run().standby and world.store.writes == 0


def test_everything_an_observe_only_pass_planned_is_pending_and_counted(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.ports.observe_only = True
    result = world.run()
    pending = PendingPlan()
    pending.record(result, 100.0, ["Thing", "Rule"], "observe-only")
    doc = plan_document(pending.plans(), role="observe-only", sources={})
    assert doc["role"] == "observe-only" and doc["at"] == 100.0 and doc["partial"] is False
    assert doc["pending"] == len(result.plan.ops)
    for kind in ("Thing", "Rule"):
        planned = [op for op in result.plan.ops if op.kind == kind]
        entry = doc["kinds"][kind]
        assert entry["operations"] == [describe(op) for op in planned]
        assert entry["pass"] == {"trigger": "test", "at": 100.0, "applied": False}
        assert set(entry["counts"]) == OPS
        for op in OPS:
            n = sum(type(o).__name__ == op for o in planned)
            assert entry["counts"][op] == n
            assert gauge(kind)[op] == n
    # a fresh world: every instance created with its ids, a pod for each
    thing = doc["kinds"]["Thing"]
    assert thing["counts"]["WriteInstance"] == thing["instances"] > 0
    writes = [o for o in thing["operations"] if o["op"] == "WriteInstance"]
    assert all(o["create"] and o["reason"] == "new-instance" for o in writes)
    assert sum(o["used"] for o in writes) == thing["rows"] == 30


def test_on_the_leader_only_what_failed_stays_pending(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.store.refuse["Rule"] = SourceUnavailable("fake ZooKeeper refuses Rule")
    result = world.run()
    plans = kind_plans(result, 5.0)
    assert plans["Thing"].applied and plans["Thing"].operations == ()
    rule = plans["Rule"]
    # Rule's writes failed, and its pod creates were held back behind them
    assert {o["op"] for o in rule.operations} == {"WriteInstance", "CreatePod"}
    assert len(rule.operations) == sum(op.kind == "Rule" for op in result.plan.ops)


def test_a_pass_over_one_kind_keeps_the_others_entry(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.ports.observe_only = True
    pending = PendingPlan()
    pending.record(world.run(), 1.0, ["Thing", "Rule"], "observe-only")
    pending.record(world.run(full=False, kinds=["Thing"]), 2.0, ["Thing", "Rule"], "observe-only")
    plans = pending.plans()
    assert plans["Thing"].at == 2.0 and plans["Rule"].at == 1.0
    # a kind taken out of the policy is forgotten
    pending.record(world.run(kinds=["Thing"]), 3.0, ["Thing"], "observe-only")
    assert set(pending.plans()) == {"Thing"}


def test_a_change_of_the_pending_operations_is_logged_once(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.ports.observe_only = True
    pending = PendingPlan()

    def said(logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [e for e in logs if e["event"] == "pending operations changed"]

    with capture_logs() as logs:
        for at in (1.0, 2.0, 3.0):
            pending.record(world.run(), at, ["Thing", "Rule"], "observe-only")
    first = said(logs)
    assert {e["resource"] for e in first} == {"Thing", "Rule"} and len(first) == 2
    thing = next(e for e in first if e["resource"] == "Thing")
    assert thing["role"] == "observe-only"
    assert thing["pending"] == sum(thing["counts"].values()) > 0
    assert set(thing["counts"]) <= OPS and 0 not in thing["counts"].values()

    world.rows.tables["Thing"] = world.rows.tables["Thing"] | {"t-new"}
    with capture_logs() as logs:
        pending.record(world.run(), 4.0, ["Thing", "Rule"], "observe-only")
    assert [e["resource"] for e in said(logs)] == ["Thing"]


def test_a_blind_kind_makes_the_plan_partial(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.ports.observe_only = True
    world.store.down = True
    plans = kind_plans(world.run(), 1.0)
    doc = plan_document(plans, role="observe-only", sources={"zookeeper": "Thing: down"})
    assert doc["partial"] is True and doc["sources"] == {"zookeeper": "Thing: down"}
    assert "zookeeper" in doc["kinds"]["Thing"]["blind"] and doc["kinds"]["Thing"]["partial"]


def test_a_write_attempt_in_observe_only_is_refused_said_and_counted() -> None:
    refuse = refuse_writes("kubernetes")
    before = metrics.OBSERVE_ONLY_WRITES_REFUSED.labels("kubernetes")._value.get()
    with capture_logs() as logs, pytest.raises(NotLeader, match="observe-only"):
        refuse()
    after = metrics.OBSERVE_ONLY_WRITES_REFUSED.labels("kubernetes")._value.get()
    assert after == before + 1
    assert logs[-1]["event"] == "write refused: observe-only" and logs[-1]["log_level"] == "error"
    assert b"reconciler_observe_only_writes_refused_total" in generate_latest(metrics.REGISTRY)
