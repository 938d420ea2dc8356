"""The daemon's memory between passes as parts owned by stages (reconciler/state/), the read
side's snapshot of it, and the types that replaced strings in the pass's control flow
(reconciler/domain/outcomes.py)."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from reconciler.domain.errors import SourceUnavailable, Terminal
from reconciler.domain.model import (
    AdoptPod,
    CreatePod,
    DeleteInstance,
    DeletePod,
    Instance,
    Outcome,
    PassResult,
    Plan,
    Reason,
    RecreatePod,
    WriteInstance,
)
from reconciler.domain.outcomes import OutcomeResult, SkipReason, System
from reconciler.policy.loader import load_policy_and_templates
from reconciler.reconcile.pass_ports import Ports
from reconciler.reconcile.pipeline import run_pass
from reconciler.runtime.status import ReadSide
from reconciler.state.daemon import DaemonState
from reconciler.state.retries import OpRetries
from reconciler.telemetry import metrics
from tests.support.fakes import FakeClock, FakePodCache, FakePods, FakeRows, FakeStore, write_policy

WRITE = WriteInstance("Thing", Instance(0, {"t0"}, 10), create=True, reason=Reason.NEW_INSTANCE)


def state_with_policy(folder: Path) -> DaemonState:
    state = DaemonState()
    state.policy_accepted(*load_policy_and_templates(write_policy(folder)))
    return state


def ports_on_fakes(clock: FakeClock, store: FakeStore | None = None) -> Ports:
    pods = FakePods()
    return Ports(
        store=store or FakeStore(),
        rows=FakeRows({"Thing": {f"t{i}" for i in range(30)}, "Rule": {"r0"}}),
        pods=pods,
        pod_cache=FakePodCache(pods),
        wall=clock.wall,
        mono=clock.mono,
    )


# --- the types ----------------------------------------------------------------------------


def test_outcome_results_read_as_the_strings_they_replaced() -> None:
    assert [str(r) for r in OutcomeResult] == ["ok", "failed", "pending", "skipped"]
    assert json.dumps([OutcomeResult.OK, OutcomeResult.SKIPPED]) == '["ok", "skipped"]'
    assert f"{OutcomeResult.FAILED}" == "failed"


def test_an_outcome_result_is_the_metric_label_it_always_was() -> None:
    before = metrics.REGISTRY.get_sample_value(
        "reconciler_operations_total",
        {"resource": "Thing", "op": "WriteInstance", "result": "ok"},
    )
    metrics.OPERATIONS.labels("Thing", "WriteInstance", OutcomeResult.OK).inc()
    after = metrics.REGISTRY.get_sample_value(
        "reconciler_operations_total",
        {"resource": "Thing", "op": "WriteInstance", "result": "ok"},
    )
    assert after == (before or 0.0) + 1


def test_a_skip_reason_reads_as_the_error_text_it_replaced() -> None:
    assert SkipReason.OVER_BUDGET.text() == "pass over budget: left for the next pass"
    assert (
        SkipReason.REFUSED_BEFORE.text("Terminal: no")
        == "refused before, not retried until its inputs change: Terminal: no"
    )
    assert SkipReason.GIVER_FAILED.text() == (
        "giver write failed: its ids are still on another instance"
    )


def test_only_an_outcome_skipped_for_the_budget_is_left_for_the_next_pass() -> None:
    budget = Outcome(WRITE, OutcomeResult.SKIPPED, "anything", skip=SkipReason.OVER_BUDGET)
    same_text = Outcome(WRITE, OutcomeResult.SKIPPED, SkipReason.OVER_BUDGET.text())
    backing_off = Outcome(WRITE, OutcomeResult.SKIPPED, None, skip=SkipReason.BACKING_OFF)
    result = PassResult("test", Plan((WRITE,), {}), (budget, same_text, backing_off), 0.0)
    assert result.left == [budget]
    assert result.unfinished("Thing") and not result.unfinished("Rule")


@pytest.mark.parametrize(
    ("op", "system", "key"),
    [
        (WRITE, System.ZOOKEEPER, "zk:Thing/0"),
        (DeleteInstance("Thing", 1), System.ZOOKEEPER, "zk:Thing/1"),
        (CreatePod("Thing", 2), System.KUBERNETES, "pod:Thing/2"),
        (DeletePod("Thing", "iota-dac-3", 3), System.KUBERNETES, "pod:Thing/iota-dac-3"),
        (RecreatePod("Thing", "iota-dac-4", 4, Reason.POD_DEAD), System.KUBERNETES, "pod:Thing/4"),
        (AdoptPod("Thing", "iota-dac-5", 5), System.KUBERNETES, "adopt:Thing/iota-dac-5"),
    ],
)
def test_every_operation_names_the_system_it_writes_and_keeps_its_key(
    op: object, system: System, key: str
) -> None:
    assert op.system is system  # type: ignore[attr-defined]
    assert op.key == key  # type: ignore[attr-defined]


def test_a_refusal_is_not_retried_and_says_what_refused_it() -> None:
    retries = OpRetries()
    refused = Outcome(WRITE, OutcomeResult.FAILED, "Terminal: bad", retry=False)
    assert retries.done(refused, 0.0) is None
    assert retries.skip_reason(WRITE, 1.0) == (SkipReason.REFUSED_BEFORE, "Terminal: bad")
    retries.forget_refusals()
    assert retries.skip_reason(WRITE, 1.0) is None


# --- the parts ----------------------------------------------------------------------------


def test_every_part_of_one_state_shares_its_lock() -> None:
    state = DaemonState()
    parts = [v for v in vars(state).values() if hasattr(v, "_lock")]
    assert len(parts) == 12
    assert all(part._lock is state._lock for part in parts)


def test_a_reader_waits_for_a_transition_that_spans_parts(tmp_path: Path) -> None:
    state = state_with_policy(tmp_path)
    seen: list[int | None] = []
    with state._lock:  # as a pass recording itself holds it
        reader = threading.Thread(target=lambda: seen.append(state.view().known_rows.get("X")))
        reader.start()
        reader.join(0.1)
        assert reader.is_alive() and seen == []
        state.rows.remember("X", frozenset({"x1"}))
    reader.join(5)
    assert seen == [1]


def test_a_new_policy_ends_overrides_and_refusals_and_forgets_dropped_kinds(
    tmp_path: Path,
) -> None:
    state = state_with_policy(tmp_path)
    state.request_rebalance("Thing", {"maxInstances": 50})
    state.sources.failed("database", "Gone", "table missing")
    state.retries.done(Outcome(WRITE, OutcomeResult.FAILED, "Terminal: x", retry=False), 0.0)
    assert state.policies()["Thing"].max_instances == 50
    state.policy_accepted(*load_policy_and_templates(write_policy(tmp_path, tick=30)))
    assert state.policies()["Thing"].max_instances != 50
    assert not state.sources.blind
    assert state.retries.skip_reason(WRITE, 0.0) is None


def test_a_template_edit_alone_keeps_the_overrides(tmp_path: Path) -> None:
    state = state_with_policy(tmp_path)
    state.request_rebalance("Thing", {"maxInstances": 50})
    state.policy_accepted(
        *load_policy_and_templates(write_policy(tmp_path, tick=30)), keep_overrides=True
    )
    assert state.policies()["Thing"].max_instances == 50


def test_a_pin_set_by_an_operator_authorizes_its_plan_and_outlives_an_older_read(
    tmp_path: Path,
) -> None:
    state = state_with_policy(tmp_path)
    generation = state.pins.generation()  # a pass begins reading ZooKeeper's pins
    state.set_pin("Thing", None)  # meanwhile an operator unpins Thing
    state.pins.read({}, generation)  # the read begun before is stale: ignored
    assert not state.pins.known()
    hold, _ = state.valves.decide("Thing", "drastic", full=True, confirm_passes=3, operator=False)
    assert not hold  # the operator's start let the plan through


# --- the read side ------------------------------------------------------------------------


def test_the_snapshot_cannot_change_the_state(tmp_path: Path) -> None:
    clock = FakeClock()
    state = state_with_policy(tmp_path)
    run_pass(ports_on_fakes(clock), state, trigger="test")
    view = state.view()
    with pytest.raises(TypeError):
        view.assignments["Thing"][99] = next(iter(view.assignments["Thing"].values()))  # type: ignore[index]
    with pytest.raises(TypeError):
        view.policies["New"] = view.policies["Thing"]  # type: ignore[index]
    with pytest.raises(TypeError):
        view.valves["Thing"]["engaged"] = True  # type: ignore[index]
    assert 99 not in state.world.assignment("Thing")  # type: ignore[operator]


def test_status_is_plain_json_taken_from_one_snapshot(tmp_path: Path) -> None:
    clock = FakeClock()
    store = FakeStore(down=True)
    state = state_with_policy(tmp_path)
    state.request_rebalance("Thing", {"maxInstances": 50})
    ports = ports_on_fakes(clock, store)
    run_pass(ports, state, trigger="test")
    status = ReadSide(state, ports, tmp_path / "policy.yaml", wall=clock.wall).status()
    assert json.loads(json.dumps(status)) == status
    thing = status["kinds"]["Thing"]
    assert thing["degraded"] == {"zookeeper": "fake ZooKeeper is down"}
    assert thing["valve"] == {"engaged": False, "reason": None, "passes": 0}
    assert thing["overrides"] == {"maxInstances": 50}
    assert status["sources"] == {
        "zookeeper": "Rule: fake ZooKeeper is down; Thing: fake ZooKeeper is down"
    }


def test_an_unsure_zookeeper_write_makes_the_next_event_pass_read_zookeeper(
    tmp_path: Path,
) -> None:
    clock = FakeClock()
    store = FakeStore()
    state = state_with_policy(tmp_path)
    ports = ports_on_fakes(clock, store)
    run_pass(ports, state, trigger="test")
    assert state.world.assignment("Thing", trusted=True) is not None
    store.refuse["Thing"] = SourceUnavailable("connection lost mid-write")
    state.rows.patch("Thing", ["t-new"], [])
    run_pass(ports, state, trigger="test", full=False)
    assert state.world.assignment("Thing", trusted=True) is None  # read ZooKeeper next
    assert state.world.assignment("Rule", trusted=True) is not None


def test_a_failed_pod_operation_leaves_the_assignment_trusted(tmp_path: Path) -> None:
    clock = FakeClock()
    ports = ports_on_fakes(clock)
    ports.pods.refuse_create["Thing"] = Terminal("quota exceeded")  # type: ignore[attr-defined]
    state = state_with_policy(tmp_path)
    result = run_pass(ports, state, trigger="test")
    assert any(o.op.system is System.KUBERNETES for o in result.failed)
    assert state.world.assignment("Thing", trusted=True) is not None
