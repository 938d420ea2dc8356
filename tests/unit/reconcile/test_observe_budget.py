"""The pass budget shared among the kinds in observe (reconciler/reconcile/pipeline.py,
reconciler/domain/call_limit.py), on in-memory fakes and a fake clock: with every server
frozen, a pass of six kinds stops observing at its budget instead of spending each read's own
deadline six times over, the kinds it did not reach are blind and degraded (not their
sources down), the next pass begins with them, and when the servers answer again every kind
converges."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from structlog.testing import capture_logs

from reconciler.domain import call_limit
from reconciler.domain.errors import SourceUnavailable
from reconciler.domain.ids import SortedIds
from reconciler.domain.model import Assignment, PassResult, Pod
from reconciler.policy.loader import load_policy_and_templates
from reconciler.reconcile.budget import Deadline
from reconciler.reconcile.pass_ports import Ports
from reconciler.reconcile.pipeline import run_pass
from reconciler.state.daemon import DaemonState
from reconciler.state.sources import SourceHealth
from reconciler.state.turns import ObserveTurns
from reconciler.telemetry import metrics
from tests.support import fakes
from tests.support.fakes import REPO, FakeClock, FakePods, FakeRows, FakeStore

BUDGET = 3.0
TIMEOUT = 10.0  # each server's own read deadline (the settings' defaults)
KINDS = [f"K{i}" for i in range(6)]


class Frozen:
    """What a frozen server does to a read: nothing comes back, and the client gives up at
    its deadline, its own or the pass's (`call_limit.bounded`), taken on the fake clock."""

    def __init__(self, clock: FakeClock, name: str) -> None:
        self.clock, self.name, self.on = clock, name, True
        self.waited: list[float] = []

    def wait(self) -> None:
        if self.on:
            seconds = call_limit.bounded(TIMEOUT)
            self.waited.append(seconds)
            self.clock.advance(seconds)
            raise SourceUnavailable(f"fake {self.name}: no answer within {seconds:g} s")


class FrozenRows(FakeRows):
    """A FAKE database that can be frozen."""

    frozen: Frozen

    def ids(self, table: str) -> SortedIds:
        self.frozen.wait()
        return super().ids(table)


class FrozenStore(FakeStore):
    """A FAKE ZooKeeper that can be frozen; it remembers which kinds were read, in order."""

    frozen: Frozen
    read_order: list[str]

    def read(self, kind: str) -> Assignment:
        self.read_order.append(kind)
        self.frozen.wait()
        return super().read(kind)


class FrozenPods(FakePods):
    """A FAKE apiserver that can be frozen."""

    frozen: Frozen

    def list_pods(self, kind: str) -> dict[str, Pod]:
        self.frozen.wait()
        return super().list_pods(kind)


class World:
    """Six kinds of 20 rows each, every server frozen at the start."""

    def __init__(self, folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.clock = FakeClock()
        tables = {kind: {f"{kind}-{n}" for n in range(20)} for kind in KINDS}
        self.rows = FrozenRows(tables)
        self.store = FrozenStore()
        self.pods = FrozenPods()
        self.rows.frozen = Frozen(self.clock, "database")
        self.store.frozen = Frozen(self.clock, "zookeeper")
        self.pods.frozen = Frozen(self.clock, "apiserver")
        self.store.read_order = []
        for kind in KINDS:
            monkeypatch.setitem(fakes.NAMES, kind, f"worker-{kind.lower()}")
        self.ports = Ports(
            store=self.store,
            rows=self.rows,
            pods=self.pods,
            wall=self.clock.wall,
            mono=self.clock.mono,
        )
        self.state = DaemonState()
        self.state.policy_accepted(*load_policy_and_templates(policy(folder)))

    def thaw(self) -> None:
        for frozen in (self.rows.frozen, self.store.frozen, self.pods.frozen):
            frozen.on = False

    def run(self) -> PassResult:
        deadline = Deadline.start(BUDGET, self.clock.mono)
        return run_pass(self.ports, self.state, trigger="test", deadline=deadline)

    def degraded(self) -> dict[str, float]:
        return {
            k: metrics.REGISTRY.get_sample_value("reconciler_kind_degraded", {"resource": k}) or 0.0
            for k in KINDS
        }


def policy(folder: Path) -> Path:
    kinds = {
        kind: {
            "table": kind,
            "instanceName": f"worker-{kind.lower()}",
            "template": str(REPO / "templates/iota-dac/pod-template.yml"),
            "initInstances": 2,
        }
        for kind in KINDS
    }
    path = folder / "policy.yaml"
    path.write_text(yaml.safe_dump({"tickSeconds": 60, "kinds": kinds}, sort_keys=False))
    return path


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> World:
    return World(tmp_path, monkeypatch)


def test_a_pass_with_every_server_frozen_stops_observing_at_its_budget(world: World) -> None:
    with capture_logs() as logs:
        result = world.run()
    # The first kind's database read is given the whole budget (3 s of its own 10 s); nothing
    # is left for the other reads: six kinds of three frozen reads would take 180 s.
    assert world.rows.frozen.waited == [BUDGET]
    assert world.store.frozen.waited == [] and world.pods.frozen.waited == []
    assert result.seconds <= BUDGET + call_limit.MIN_CALL_SECONDS
    assert result.plan.ops == ()
    said = [e for e in logs if e["event"] == "pass over budget"]
    assert len(said) == 1 and said[0]["unobserved"] == KINDS, said


def test_a_kind_the_budget_did_not_reach_is_blind_and_degraded_not_its_sources_down(
    world: World,
) -> None:
    result = world.run()
    first, rest = KINDS[0], KINDS[1:]
    for kind in rest:
        assert set(result.plan.reports[kind].blind) == {"rows", "zookeeper", "pods"}
        assert set(world.state.sources.degraded(kind)) == {"database", "zookeeper", "kubernetes"}
        assert "budget of 3 s ran out" in world.state.sources.degraded(kind)["zookeeper"]
    assert "no answer" in world.state.sources.degraded(first)["database"]
    assert world.degraded() == {kind: 1.0 for kind in KINDS}
    # The sources that did not answer are down; those the budget left unasked are not.
    assert world.state.sources.down("database")
    assert not world.state.sources.down("zookeeper") and not world.state.sources.down("kubernetes")
    assert set(world.state.view().source_errors) == {"database"}
    assert world.state.sources.blind  # the loop looks again soon, not a tick later


def test_the_next_pass_begins_with_the_kinds_the_last_did_not_reach(world: World) -> None:
    world.rows.frozen.on = False  # only ZooKeeper and the apiserver frozen: one kind a pass
    for _ in KINDS:
        world.run()
    # Each pass spends its budget on the ZooKeeper read of the kind at its head; the kinds
    # it did not reach open the next: every kind had its turn, none twice.
    assert world.store.read_order == KINDS
    assert world.store.frozen.waited == [BUDGET] * len(KINDS)
    world.run()
    assert world.store.read_order[-1] == KINDS[0]  # and round again


def test_once_the_servers_answer_every_kind_converges_and_is_degraded_no_more(
    world: World,
) -> None:
    for _ in range(3):
        world.run()
    world.thaw()
    for _ in range(5):
        result = world.run()
        if not result.plan.ops:
            break
        world.pods.run_all()
    else:
        raise AssertionError("did not converge in 5 passes")
    for kind in KINDS:
        ids = [i for inst in world.store.data[kind].values() for i in inst.ids]
        assert sorted(ids) == sorted(world.rows.tables[kind]), kind
        assert len(world.pods.pods[kind]) == len(world.store.data[kind])
    assert world.degraded() == {kind: 0.0 for kind in KINDS}
    assert not world.state.sources.blind


def test_a_rebalance_asked_of_a_kind_the_budget_did_not_reach_stays_asked(world: World) -> None:
    world.state.request_rebalance("K3")
    world.run()
    assert world.state.intents(world.state.policies())["K3"].rebalance


def test_a_call_is_bounded_by_what_the_pass_has_left_within_its_reads_only() -> None:
    left = [5.0]
    assert call_limit.bounded(TIMEOUT) == TIMEOUT  # no pass reading: its own deadline
    with call_limit.reads_within(lambda: left[0]):
        assert call_limit.bounded(TIMEOUT) == 5.0
        assert call_limit.bounded(2.0) == 2.0  # never longer than its own
        left[0] = 0.0
        assert call_limit.bounded(TIMEOUT) == call_limit.MIN_CALL_SECONDS
    assert call_limit.bounded(TIMEOUT) == TIMEOUT


def test_a_read_left_by_the_budget_neither_hides_a_failure_nor_counts_as_one() -> None:
    health = SourceHealth()
    health.failed("database", "Thing", "no answer")
    health.unread("database", "Thing", "not read in this pass")
    assert health.degraded("Thing") == {"database": "no answer"}  # the failure stays
    health.unread("zookeeper", "Thing", "not read in this pass")
    assert not health.down("zookeeper") and health.by_source() == {"database": "Thing: no answer"}
    assert not health.recovered("zookeeper", "Thing")  # nothing to say "back" about
    health.unread("zookeeper", "Rule", "not read in this pass")
    assert health.unread_kinds(["Thing", "Rule"]) == ["Rule"]
    health.looking("Rule")
    assert health.degraded("Rule") == {} and not health.unread_kinds(["Rule"])


def test_the_kinds_a_pass_did_not_reach_open_the_next_in_the_order_they_waited() -> None:
    turns = ObserveTurns()
    order = turns.order(KINDS)
    assert order == KINDS
    turns.note(order, ["K0"])
    order = turns.order(KINDS)
    assert order == ["K1", "K2", "K3", "K4", "K5", "K0"]
    turns.note(order, ["K1", "K2"])
    assert turns.order(KINDS) == ["K3", "K4", "K5", "K0", "K1", "K2"]
    # An event pass over two kinds leaves the others waiting as they were.
    turns.note(turns.order(["K5", "K1"]), ["K5", "K1"])
    assert turns.order(KINDS) == ["K3", "K4", "K0", "K1", "K2", "K5"]
