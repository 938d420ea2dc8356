"""One pass (reconciler.reconcile.pipeline) on in-memory fakes of the ports
(tests/support/fakes.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.domain.errors import NotYet, Terminal
from reconciler.domain.model import CreatePod, Reason, RecreatePod, WriteInstance
from reconciler.policy.loader import load_policy_and_templates
from tests.support.fakes import (
    write_policy,
)
from tests.support.pass_world import World


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


def test_a_converged_world_plans_nothing_and_writes_nothing(world: World) -> None:
    world.converge()
    writes = (world.store.writes, world.pods.creates, world.pods.deletes)
    assert world.run().plan.ops == ()
    assert (world.store.writes, world.pods.creates, world.pods.deletes) == writes


def test_an_unavailable_database_moves_no_id_and_keeps_the_pods(world: World) -> None:
    world.converge()
    before = world.store.read("Thing")
    world.rows.tables["Thing"] -= {"t0", "t1", "t2"}
    world.rows.down = True
    result = world.run()
    assert result.plan.reports["Thing"].blind == ()  # rows known from the last read
    assert not any(isinstance(op, WriteInstance) for op in result.plan.ops)
    assert world.store.read("Thing") == before
    assert world.state.view().source_errors.keys() == {"database"}


def test_an_unavailable_database_at_start_writes_no_instance(world: World) -> None:
    world.rows.down = True
    result = world.run()
    assert result.plan.reports["Thing"].blind == ("rows",)
    assert not any(isinstance(op, WriteInstance) for op in result.plan.ops)
    assert world.store.writes == 0


def test_an_unavailable_zookeeper_plans_nothing_for_any_kind(world: World) -> None:
    world.store.down = True
    result = world.run()
    assert result.plan.ops == ()
    assert world.pods.creates == 0 and world.pods.deletes == 0


def test_an_unavailable_apiserver_writes_the_assignment_but_no_pod(world: World) -> None:
    world.pods.down = True
    result = world.run()
    assert world.store.writes == 6  # 3 + 3 instances
    assert not any(isinstance(op, CreatePod) for op in result.plan.ops)
    assert result.plan.reports["Thing"].blind == ("pods",)


def test_a_terminal_refusal_on_one_kind_leaves_the_others_applied_and_is_not_retried(
    world: World,
) -> None:
    world.pods.refuse_create["Rule"] = Terminal("403 Forbidden: pods is forbidden")
    first = world.run()
    thing = [o for o in first.outcomes if o.op.kind == "Thing"]
    rule_creates = [
        o for o in first.outcomes if isinstance(o.op, CreatePod) and o.op.kind == "Rule"
    ]
    assert thing and all(o.result == "ok" for o in thing)
    assert rule_creates and all(o.result == "failed" and not o.retry for o in rule_creates)
    assert len(world.store.read("Rule")) == 3  # Rule's ZooKeeper writes went through
    tried = world.pods.creates

    world.clock.advance(3600)  # far past any backoff
    second = world.run()
    again = [o for o in second.outcomes if isinstance(o.op, CreatePod) and o.op.kind == "Rule"]
    assert again and all(o.result == "skipped" for o in again)
    assert world.pods.creates == tried  # not asked again

    # A new policy is new inputs: the refused operations are tried again.
    del world.pods.refuse_create["Rule"]
    world.state.policy_accepted(
        *load_policy_and_templates(write_policy(world_folder(world), tick=30))
    )
    third = world.run()
    assert (
        all(o.result == "ok" for o in third.outcomes if isinstance(o.op, CreatePod))
        and world.pods.creates > tried
    )


def world_folder(world: World) -> Path:
    assert world.state.policy.loaded is not None
    return world.state.policy.loaded.path.parent


def test_a_failed_operation_backs_off_doubling_and_resets_on_success(world: World) -> None:
    world.converge()
    world.rows.tables["Thing"].add("t-new")
    world.store.refuse["Thing"] = RuntimeError("connection reset")
    delays = []
    for _ in range(3):
        result = world.run()
        failed = [o for o in result.outcomes if o.result == "failed"]
        assert len(failed) == 1
        delays.append(world.state.retries._backoff[failed[0].op.key].delay)
        skipped = world.run()  # at once: still backing off
        assert [o.result for o in skipped.outcomes] == ["skipped"]
        world.clock.advance(delays[-1])
    assert delays == [1.0, 2.0, 4.0]

    del world.store.refuse["Thing"]
    assert [o.result for o in world.run().outcomes] == ["ok"]
    assert world.state.retries._backoff == {}


def test_not_yet_is_pending_without_backoff(world: World) -> None:
    world.pods.refuse_create["Thing"] = NotYet("pod iota-dac-0 is still terminating")
    result = world.run()
    pending = [o for o in result.outcomes if o.result == "pending"]
    assert len(pending) == 3
    again = world.run()  # no time passed: tried again at once
    assert [o.result for o in again.outcomes if o.op.kind == "Thing"] == ["pending"] * 3


def test_a_dead_pods_successor_is_created_on_the_pass_after_its_delete_is_seen(
    world: World,
) -> None:
    world.converge()
    world.pods.cache_lags = True  # the watch shows changes only on sync()
    world.pods.set_phase("Thing", "iota-dac-1", "Failed")
    world.pods.sync()
    old_uid = world.pods.pods["Thing"]["iota-dac-1"].uid

    first = world.run(full=False)  # woken by the watch: the pod failed
    assert first.plan.ops == (RecreatePod("Thing", "iota-dac-1", 1, Reason.POD_DEAD, old_uid),)
    assert world.pods.creates == 6  # no create in the same pass

    # Woken again before the watch saw the delete: the expectation holds it as terminating.
    assert world.run(full=False).plan.ops == ()

    world.pods.finish_deletes()
    world.pods.sync()  # the watch sees it gone
    third = world.run(full=False)
    assert third.plan.ops == (CreatePod("Thing", 1),)
    # Created but not yet in the watch cache: the next event pass does not create it again.
    assert world.run(full=False).plan.ops == ()
    world.pods.sync()
    new = world.pods.pods["Thing"]["iota-dac-1"]
    assert new.uid != old_uid and new.phase == "Pending"


def test_a_created_pod_deleted_before_the_watch_showed_it_is_created_again_at_once(
    world: World,
) -> None:
    world.converge()
    world.pods.cache_lags = True  # the watch shows changes only on sync()
    world.pods.delete_pod("Thing", "iota-dac-1")
    world.pods.finish_deletes()
    world.pods.sync()
    assert world.run(full=False).plan.ops == (CreatePod("Thing", 1),)
    created = world.pods.pods["Thing"]["iota-dac-1"].uid

    # Someone else deletes the new pod before any pass saw it in the cache (on the rig, the
    # old incarnation's deleter by name): the watch shows it added and deleted at once.
    world.pods.delete_pod("Thing", "iota-dac-1")
    world.pods.finish_deletes()
    world.pods.sync()
    assert "iota-dac-1" not in (world.pods.pods_cached("Thing") or {})
    assert world.run(full=False).plan.ops == (CreatePod("Thing", 1),)
    assert world.pods.pods["Thing"]["iota-dac-1"].uid != created


def test_event_passes_read_pods_from_the_watch_and_full_passes_list(world: World) -> None:
    world.converge()
    lists = world.pods.lists
    world.run(full=False)
    assert world.pods.lists == lists
    world.run(full=True)
    assert world.pods.lists == lists + 2  # one list per kind


def test_event_passes_do_not_read_the_database(world: World) -> None:
    world.converge()
    reads = world.rows.reads
    world.state.rows.patch("Thing", ["t-new"], [])
    result = world.run(full=False, kinds=["Thing"])
    assert world.rows.reads == reads
    assert any(
        "t-new" in op.instance.ids for op in result.plan.ops if isinstance(op, WriteInstance)
    )


def test_a_table_that_does_not_exist_blinds_its_kind_only(tmp_path: Path) -> None:
    w = World(tmp_path, Rule={"table": "Rulez"})
    result = w.run()
    assert result.plan.reports["Rule"].blind == ("rows",)
    assert len(w.store.read("Thing")) == 3 and "Rule" not in w.store.data
    assert "database" in w.state.view().source_errors


def test_pod_operations_that_went_through_become_kubernetes_events(world: World) -> None:
    world.pods.refuse_create["Rule"] = Terminal("403 Forbidden")
    world.run()
    world.pods.run_all()
    world.pods.set_phase("Thing", "iota-dac-2", "Failed")
    world.run(full=False)
    events = world.events.recorded
    assert ("Thing", "iota", "iota-dac-0", "Create", "PodMissing") in events
    assert ("Thing", "iota", "iota-dac-2", "Delete", "PodDead") in events
    assert not any(e[0] == "Rule" for e in events)  # refused: no Event claims it happened


def test_an_emptied_table_is_held_by_the_safety_valve_until_the_picture_holds(
    tmp_path: Path,
) -> None:
    w = World(tmp_path)
    w.rows.tables["Thing"] = {f"t{i}" for i in range(300)}
    w.converge()
    before = w.store.read("Thing")
    w.rows.tables["Thing"] = set()  # a wrong schema, an emptied replica: 0 rows
    for n in (1, 2):
        w.run()
        assert w.store.read("Thing") == before, f"pass {n} applied the drastic plan"
        assert w.state.valve("Thing")["engaged"] is True
    assert "unassign 300 of 300" in str(w.state.valve("Thing")["reason"])
    w.run()  # third full pass with the same picture: it goes ahead
    assert all(inst.ids == frozenset() for inst in w.store.read("Thing").values())
    assert w.state.valve("Thing")["engaged"] is False


def test_an_operator_confirms_a_held_plan(tmp_path: Path) -> None:
    w = World(tmp_path)
    w.rows.tables["Thing"] = {f"t{i}" for i in range(300)}
    w.converge()
    w.rows.tables["Thing"] = {f"t{i}" for i in range(100)}  # 200 of 300 rows deleted
    w.run()
    assert sum(len(i.ids) for i in w.store.read("Thing").values()) == 300  # held
    assert w.state.valve_confirm("Thing") is True
    w.run()
    assert sum(len(i.ids) for i in w.store.read("Thing").values()) == 100
    assert w.state.valve_confirm("Thing") is False  # nothing held any more


def test_ordinary_churn_and_small_fleets_never_trip_the_valve(world: World) -> None:
    world.converge()  # 30 Things: removing 25 of them is below the 50-id floor
    world.rows.tables["Thing"] = {f"t{i}" for i in range(5)}
    world.run()
    assert sum(len(i.ids) for i in world.store.read("Thing").values()) == 5
    assert world.state.valve("Thing")["engaged"] is False


def test_a_standby_that_becomes_leader_never_acts_on_its_stale_view(world: World) -> None:
    from tests.support.fakes import FakeLeadership

    world.ports.leadership = FakeLeadership(leading=False)
    standby = world.run()  # sees an empty ZooKeeper: nothing written yet
    assert standby.standby and world.store.writes == 0
    # Meanwhile the leader (another daemon) lays the kinds out.
    other = World(world_folder(world))
    other.store = world.store
    other.ports.store = world.store
    other.run()
    layout = world.store.read("Thing")
    writes = world.store.writes
    world.ports.leadership.leading = True  # type: ignore[union-attr]
    event = world.run(full=False)  # an event pass right after winning
    assert not any(isinstance(op, WriteInstance) and op.create for op in event.plan.ops)
    assert world.store.read("Thing") == layout and world.store.writes == writes


def test_a_template_edit_rolls_pods_one_at_a_time_each_after_the_last_runs(
    world: World,
) -> None:
    from dataclasses import replace as copy_with

    world.converge()
    for pods in world.pods.pods.values():  # created from revision "r1"
        for name, pod in pods.items():
            pods[name] = copy_with(pod, revision="r1", started_at=world.clock.now - 600)
    world.pods.sync()
    world.state.policy._revisions = {"Thing": "r2", "Rule": "r1"}  # Thing's template was edited
    replaced: list[str] = []
    for _ in range(12):
        result = world.run(full=False)
        rolled = [op for op in result.plan.ops if isinstance(op, RecreatePod)]
        assert len(rolled) <= 1  # maxUnavailable 1
        replaced += [op.pod_name for op in rolled]
        world.pods.finish_deletes()  # the old pod goes
        world.run(full=False)  # its successor is created (Pending: the roll waits)
        assert not [op for op in world.run(full=False).plan.ops if isinstance(op, RecreatePod)]
        for name, pod in world.pods.pods["Thing"].items():  # it runs, from revision r2
            if pod.phase == "Pending":
                world.pods.pods["Thing"][name] = copy_with(pod, phase="Running", revision="r2")
        world.pods.sync()
    assert replaced == ["iota-dac-0", "iota-dac-1", "iota-dac-2"]
    assert all(p.revision == "r2" for p in world.pods.pods["Thing"].values())
    assert all(p.revision == "r1" for p in world.pods.pods["Rule"].values())  # untouched


def test_a_rolling_restart_replaces_the_pods_that_existed_when_asked(world: World) -> None:
    world.converge()
    world.state.request_restart("Rule")
    result = world.run(full=False)
    assert [op.pod_name for op in result.plan.ops if isinstance(op, RecreatePod)] == [
        "iota-rules-engine-0"
    ]


def test_a_pod_deleted_on_scale_down_is_not_deleted_again_before_the_watch_shows_it(
    world: World,
) -> None:
    from reconciler.domain.model import DeletePod

    world.converge()
    world.pods.cache_lags = True  # the watch shows changes only on sync()
    name = "iota-dac-5"
    world.pods.pods["Thing"][name] = world.pods.pods["Thing"]["iota-dac-0"].__class__(
        name, 5, "Running", uid="u-extra"
    )
    world.pods.sync()
    first = world.run(full=False)
    assert [op for op in first.plan.ops if isinstance(op, DeletePod)] == [
        DeletePod("Thing", name, 5, Reason.SCALE_DOWN, "u-extra")
    ]
    deletes = world.pods.deletes
    assert world.run(full=False).plan.ops == ()  # the expectation holds it as terminating
    assert world.pods.deletes == deletes


def test_over_capacity_is_said_once_while_it_lasts_and_when_it_ends(tmp_path: Path) -> None:
    from structlog.testing import capture_logs

    # 30 Things at 5 per instance need 7 instances; 4 are allowed.
    world = World(tmp_path, Thing={"resourcePerInstance": 5, "maxInstances": 4})
    with capture_logs() as logs:
        for _ in range(3):
            world.run()
        world.rows.tables["Thing"] = {f"t{i}" for i in range(15)}
        world.run()
        world.run()
    said = [e["event"] for e in logs if e["event"].startswith("over capacity")]
    assert said == ["over capacity", "over capacity resolved"]
    assert world.state.last.report("Thing") is not None
