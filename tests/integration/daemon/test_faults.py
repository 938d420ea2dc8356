"""Faults on the rig's real servers while rows churn, one at a time, against a real `reconciler
run` (tests/chaos/world.py): after each, the invariant checker written apart from the planner
(tests/chaos/invariants.py) passes within 2 passes of recovery. The fault list and durations
are tests/chaos/faults.py's; `python -m tests.chaos` mixes them at random. Then the faults that
can only be faked inside the daemon's process (a wall-clock step, a wedged pass) and the pass
budget under a frozen database, on an in-process daemon (see "in-process faults")."""

from __future__ import annotations

import random
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from reconciler.runtime.loop import Wake, WakeReason
from tests.chaos import faults
from tests.chaos.invariants import live_pods, read_layout
from tests.chaos.run import inject_and_judge
from tests.chaos.world import HEARTBEAT_TIMEOUT, TICK_SECONDS, Servers, World, policy_doc
from tests.support.daemon import Running
from tests.support.fleet import REPO, eventually
from tests.support.polling import seconds_until

LAST_LINE = re.compile(r"^violations=(\d+) faults=(\d+) kills=(\d+) worst_convergence_s=[\d.]+$")
KILLS = 4  # SIGKILLs at random points of rescales (the chaos run adds more, by seed)


@pytest.fixture(scope="module")
def world(
    zk: Any, pg: Any, mqtt: Any, kafka: Any, kube: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    w = World(
        Servers(zk, pg, mqtt, kafka, kube), tmp_path_factory.mktemp("faults"), random.Random(12)
    )
    w.start()
    seconds, violations = w.converge(time.time())
    assert violations == [], f"the fleet did not settle before any fault ({seconds:.0f}s)"
    yield w
    w.close()


@pytest.mark.parametrize("fault", sorted(set(faults.FAULTS) - {"sigkill_mid_apply"}))
def test_after_the_fault_the_invariants_hold_within_two_passes(world: World, fault: str) -> None:
    injected, seconds, violations = inject_and_judge(world, fault, random.Random(fault))
    assert violations == [], f"{injected.fault}, {seconds:.1f}s after recovery: {violations}"


def test_sigkills_mid_apply_never_leave_an_id_on_two_instances_or_a_pod_orphaned(
    world: World,
) -> None:
    rng = random.Random(7)
    for _ in range(KILLS):
        injected, seconds, violations = inject_and_judge(world, "sigkill_mid_apply", rng)
        assert violations == [], (
            f"killed {injected.kill_point}, {seconds:.1f}s after restart: {violations}"
        )


def test_a_kind_taken_out_of_the_policy_is_no_longer_reported_unreadable(world: World) -> None:
    injected = faults.unknown_table(world, random.Random(3))
    assert "Ghost" in str((world.status() or {}).get("sources")), "the Ghost is not degraded"
    assert injected.undo is not None
    injected.undo()

    def ghost_gone() -> bool:
        sources = (world.status() or {}).get("sources")
        assert "Ghost" not in str(sources), sources
        return True

    eventually(ghost_gone, timeout=3 * TICK_SECONDS, what="the Ghost to leave the sources")


def test_an_emptied_table_is_held_by_the_valve_until_an_operator_confirms(world: World) -> None:
    world.churn.running.clear()
    before = read_layout(world.kazoo, "Thing")
    ns = world.namespaces["Thing"]
    pods = live_pods(world.core, ns)
    faults._empty(world)
    try:
        # Confirmed as soon as it holds: after 3 full passes it would let go by itself.
        eventually(
            lambda: (world.status() or {})["kinds"]["Thing"]["valve"]["engaged"],
            timeout=3 * TICK_SECONDS,
        )
        assert read_layout(world.kazoo, "Thing") == before
        assert live_pods(world.core, ns) == pods
        done = faults.confirm(world, "Thing")
        assert done.returncode == 0, done.stderr
        eventually(
            lambda: all(not inst.ids for inst in read_layout(world.kazoo, "Thing").values()),
            timeout=6 * TICK_SECONDS,
        )
    finally:
        faults._refill(world)
    seconds, violations = world.converge(time.time())
    assert violations == [], f"{seconds:.1f}s after the rows came back: {violations}"


def test_a_scale_down_then_up_while_kafka_is_down_is_no_violation_of_the_checker(
    world: World,
) -> None:
    """Instances removed and then created again under the same names while Kafka is down are
    a scale-down and a scale-up, not healthy workers killed: the chaos checker tells them
    apart by following the instances the daemon wrote (tests/chaos/history.py)."""
    world.churn.running.clear()

    def things(n: int, fewer: bool) -> bool:
        count = len(read_layout(world.kazoo, "Thing"))
        assert (count <= n) if fewer else (count >= n), f"{count} instances of Thing"
        return True

    world.write_policy(policy_doc(world.namespaces, thing_per_instance=20))
    _, violations = world.converge(time.time())
    assert violations == [], violations
    many = len(read_layout(world.kazoo, "Thing"))
    blind_before = world.deletions_while_blind()
    kafka = world.s.kafka
    window = world.blind("Kafka down", ["Thing"], strict=False, tail=2 * HEARTBEAT_TIMEOUT)
    kafka.stop()
    try:
        world.write_policy(policy_doc(world.namespaces, thing_per_instance=60))
        eventually(lambda: things(many - 2, fewer=True), timeout=8 * TICK_SECONDS)
        world.write_policy(policy_doc(world.namespaces, thing_per_instance=20))
        eventually(lambda: things(many, fewer=False), timeout=8 * TICK_SECONDS)
    finally:
        kafka.start()
        window.end = time.time()
    world.write_policy(policy_doc(world.namespaces))
    seconds, violations = world.converge(window.end)
    assert violations + world.settled_blind_deletions() == [], f"{seconds:.1f}s: {violations}"
    assert world.deletions_while_blind() >= blind_before + 2, "no pod went in the window"


def test_a_short_seeded_chaos_run_ends_with_its_summary_line_and_no_violation(
    tmp_path: Path,
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tests.chaos", "--seed", "1", "--minutes", "0.5"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=480,
        check=False,
    )
    lines = done.stdout.strip().splitlines()
    assert lines, done.stderr[-3000:]
    match = LAST_LINE.match(lines[-1])
    assert match, f"last line {lines[-1]!r}\n{done.stderr[-3000:]}"
    assert int(match.group(2)) >= 1, done.stdout
    assert match.group(1) == "0", done.stdout
    assert done.returncode == 0


# ---------------------------------------------------------------- in-process faults
# Faults that only exist inside the daemon's process, faked there: an in-process daemon on the
# rig's ZooKeeper, PostgreSQL and apiserver (tests/support/daemon.py), judged by the same
# invariant checker. The wall clock: the daemon reads it only through its ports (`Ports.wall`,
# the read side's `wall`), so it is stepped there while the monotonic clock goes on, as after
# an NTP step (stepping the machine's clock would hit the rig's servers too). A wedged pass: a
# port call that never returns (every real call has a deadline; only a bug can do this).
STEP_S = 3600.0
AUTOSCALE = {"cpuTargetPercent": 50, "periodSeconds": 1, "scaleDownWindowSeconds": 3}


class InProcess:
    """The in-process daemon's world: the checker's clients and a few probes."""

    def __init__(self, d: Running, kazoo: Any, engine: Any, api: Any, policy: Path) -> None:
        from kubernetes import client as k8s

        from tests.chaos import invariants

        self.d, self.daemon, self.kazoo, self.api = d, d.app.daemon, kazoo, api
        self._check = lambda: invariants.check(
            kazoo, engine, k8s.CoreV1Api(api), invariants.kinds_of(policy.read_text())
        )

    def sound(self) -> bool:
        return self._check() == []

    def things(self) -> int:
        return len(read_layout(self.kazoo, "Thing"))

    def healthz(self) -> int:
        with self.d.client() as c:
            return c.get("/healthz").status_code


@contextmanager
def in_process(
    zk_hosts: str, pg_url: str, kube: Any, ns: str, kazoo: Any, tmp_path: Path, **settings: Any
) -> Iterator[InProcess]:
    """60 Things (autoscaled) and 10 Rules on 3 instances each, tick 1 s, converged."""
    import sqlalchemy as sa

    from rig import podmetrics_standin
    from tests.support.daemon import running, settings_for
    from tests.support.fleet import seed, write_policy

    api = kube.api_client()
    podmetrics_standin.install(api)
    seed(pg_url, things=60, rules=10)
    policy = write_policy(
        tmp_path / "policy.yaml",
        ns,
        tick=1,
        Thing={"initInstances": 3, "maxInstances": 10, "autoscale": AUTOSCALE},
        Rule={"initInstances": 3},
    )
    engine = sa.create_engine(pg_url)
    try:
        with running(settings_for(zk_hosts, pg_url, kube, policy, **settings)) as d:
            world = InProcess(d, kazoo, engine, api, policy)
            eventually(world.sound, timeout=60)
            yield world
    finally:
        engine.dispose()
        api.close()


def _usage(api: Any, ns: str, ids: range, cpu: str) -> None:
    """PodMetrics (rig stand-in) for Thing's pods, stamped by the rig's own (true) clock."""
    from reconciler.domain.podspec import KIND_LABEL, MANAGED_BY_LABEL, MANAGED_BY_VALUE
    from rig import podmetrics_standin

    for i in ids:
        labels = {MANAGED_BY_LABEL: MANAGED_BY_VALUE, KIND_LABEL: "Thing", "instanceId": str(i)}
        podmetrics_standin.put_pod_metrics(
            api,
            ns,
            f"iota-dac-{i}",
            {"iota-dac": (cpu, "64Mi")},
            labels=labels,
            timestamp=time.time(),
        )


def _sample(name: str, **labels: str) -> float:
    from reconciler.telemetry import metrics

    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


def test_a_backward_wall_clock_step_stalls_neither_the_tick_nor_the_autoscale_windows(
    zk_hosts: str,
    pg_url: str,
    kube: Any,
    kube_namespace: str,
    kazoo_client: Any,
    tmp_path: Path,
) -> None:
    from reconciler.adapters.sql.inventory import insert_ids
    from tests.support.fleet import uuids

    ns = kube_namespace
    with in_process(zk_hosts, pg_url, kube, ns, kazoo_client, tmp_path) as w:
        daemon, scaler = w.daemon, w.daemon.ports.autoscaler
        assert scaler is not None and daemon.read is not None
        _usage(w.api, ns, range(3), "250m")  # 2x the target: 3 -> 6 instances
        eventually(lambda: w.things() == 6 and w.sound(), timeout=60)
        _usage(w.api, ns, range(6), "125m")  # at target: 6 holds

        # The step: the daemon's wall clock now reads an hour earlier.
        stepped_at, ticks = time.monotonic(), _sample(TICKS, trigger="tick")
        true_wall = daemon.ports.wall
        daemon.ports.wall = daemon.read.wall = lambda: true_wall() - STEP_S
        _usage(w.api, ns, range(6), "25m")  # 10 %: down to the row minimum, 3
        insert_ids(pg_url, "Thing", uuids(15))  # no MQTT hint: only a tick finds them
        eventually(lambda: w.things() == 3 and w.sound(), timeout=60)
        down_s = time.monotonic() - stepped_at
        tick_rate = (_sample(TICKS, trigger="tick") - ticks) / down_s
        status = daemon.status()["kinds"]["Thing"]["autoscale"]

        # The window held the scale-down for its 3 s of monotonic time, not an hour.
        assert scaler.decisions["Thing"].final == 3 and down_s >= 3
        assert tick_rate >= 0.5, f"{tick_rate:.2f} ticks/s with tickSeconds 1"
        assert status["at"] < time.time() - STEP_S + 60  # shown in the daemon's wall time

        # And the clock steps forward again: nothing moves, ticks go on.
        daemon.ports.wall = daemon.read.wall = true_wall
        ticks = _sample(TICKS, trigger="tick")
        took = seconds_until(lambda: _sample(TICKS, trigger="tick") - ticks >= 2, timeout=4)
        assert w.things() == 3 and w.sound(), f"after 2 ticks in {took:.1f}s"
        print(
            f"\nFIGURE backward clock step: scaled 6 -> 3 and 15 new rows assigned "
            f"{down_s:.1f}s after the step, {tick_rate:.2f} ticks/s meanwhile"
        )


TICKS = "reconciler_reconciles_total"
OVERRUNS = "reconciler_pass_overruns_total"


def test_a_frozen_database_makes_passes_overrun_their_budget_and_never_look_wedged(
    zk_hosts: str,
    pg: Any,
    pg_url: str,
    kube: Any,
    kube_namespace: str,
    kazoo_client: Any,
    tmp_path: Path,
) -> None:
    """PostgreSQL SIGSTOPped 8 s under a 1 s pass budget: each full pass spends 2 x 3 s on
    its reads (2 s statement deadline, dropped 1 s later), so passes overrun and are counted,
    but an overrun is no hang: /healthz stays 200 (budget + 30 s grace), and the fleet is
    sound within 2 passes of the database's return."""
    from reconciler.adapters.sql.inventory import insert_ids
    from tests.support.fleet import uuids

    budget = {"pass_budget_seconds": 1.0, "database_timeout": 2.0}
    ns = kube_namespace
    with in_process(zk_hosts, pg_url, kube, ns, kazoo_client, tmp_path, **budget) as w:
        overruns, health, longest = _sample(OVERRUNS), [], 0.0
        insert_ids(pg_url, "Thing", uuids(10))  # no hint: found by the first tick after
        pg.pause()
        try:
            until = time.monotonic() + 8
            while time.monotonic() < until:
                health.append(w.healthz())
                last = w.daemon.last_pass
                longest = max(longest, last.seconds if last else 0.0)
                time.sleep(0.2)  # a sample every 0.2 s for as long as the fault lasts
        finally:
            pg.resume()
        resumed = time.monotonic()
        eventually(w.sound, timeout=30)
        converged_s = time.monotonic() - resumed
        counted = _sample(OVERRUNS) - overruns
        assert counted >= 1, "no pass overran its 1 s budget with the database frozen"
        assert set(health) == {200}, health
        print(
            f"\nFIGURE frozen database under a 1 s budget: {counted:.0f} overruns (longest "
            f"pass {longest:.1f}s), /healthz 200 x{len(health)}, sound {converged_s:.1f}s "
            "after resume"
        )


class Hanging:
    """The rows port with a read that never returns until released: a wedged pass."""

    def __init__(self, rows: Any) -> None:
        self.rows, self.armed, self.inside = rows, threading.Event(), threading.Event()
        self.release = threading.Event()

    def ids(self, table: str) -> frozenset[str]:
        if self.armed.is_set():
            self.inside.set()
            self.release.wait(120)
        return self.rows.ids(table)

    def present(self, table: str, ids: Any) -> frozenset[str]:
        return self.rows.present(table, ids)

    def adopt(self, table: str, ids: Any) -> None:
        self.rows.adopt(table, ids)


def test_healthz_on_the_rig_is_503_while_a_pass_is_wedged_and_200_once_it_ends(
    zk_hosts: str,
    pg_url: str,
    kube: Any,
    kube_namespace: str,
    kazoo_client: Any,
    tmp_path: Path,
) -> None:
    budget, grace = 1.0, 2.0  # the grace is 30 s in production: shortened for the test
    ns = kube_namespace
    with in_process(
        zk_hosts, pg_url, kube, ns, kazoo_client, tmp_path, pass_budget_seconds=budget
    ) as w:
        w.daemon.liveness.grace = grace
        hanging = Hanging(w.daemon.ports.rows)
        w.daemon.ports.rows = hanging
        assert w.healthz() == 200
        hanging.armed.set()
        w.daemon.wake(Wake(WakeReason.TICK))
        assert hanging.inside.wait(10)
        wedged_at = time.monotonic()
        eventually(lambda: w.healthz() == 503, timeout=budget + grace + 5, interval=0.1)
        to_503 = time.monotonic() - wedged_at
        with w.d.client() as c:
            reason = c.get("/healthz").text
        assert "wedged" in reason, reason
        hanging.armed.clear()
        hanging.release.set()
        released = time.monotonic()
        eventually(lambda: w.healthz() == 200, timeout=10, interval=0.1)
        to_200 = time.monotonic() - released
        eventually(w.sound, timeout=30)
        assert budget + grace <= to_503 <= budget + grace + 1.5, to_503
        print(
            f"\nFIGURE wedged pass: /healthz 503 {to_503:.1f}s in (budget {budget:g} s + "
            f"grace {grace:g} s), 200 {to_200:.2f}s after it ended; {reason!r}"
        )
