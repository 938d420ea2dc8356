"""Faults on the rig's real servers while rows churn, one at a time, against a real `reconciler
run` (tests/chaos/world.py): after each, the invariant checker written apart from the planner
(tests/chaos/invariants.py) passes within 2 passes of recovery. The fault list and durations
are tests/chaos/faults.py's; `python -m tests.chaos` mixes them at random."""

from __future__ import annotations

import random
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.chaos import faults
from tests.chaos.invariants import live_pods, read_layout
from tests.chaos.run import inject_and_judge
from tests.chaos.world import TICK_SECONDS, Servers, World
from tests.integration.fleet import REPO, eventually

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
    time.sleep(3 * TICK_SECONDS)
    status = world.status() or {}
    assert "Ghost" not in str(status.get("sources")), status.get("sources")


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


# ---------------------------------------------------------------- a backward wall-clock step
# Faked in-process: the daemon reads the wall clock only through its ports (`Ports.wall`, the
# read side's `wall`), so an in-process daemon on the rig's servers gets its clock stepped back
# an hour there, while its monotonic clock goes on, as after an NTP step. (A process's clock
# cannot be stepped alone; stepping the machine's would hit the rig's servers too.)
STEP_S = 3600.0
AUTOSCALE = {"cpuTargetPercent": 50, "periodSeconds": 1, "scaleDownWindowSeconds": 3}


def _usage(api: Any, ns: str, ids: range, cpu: str) -> None:
    """PodMetrics (rig stand-in) for Thing's pods, stamped by the rig's own (true) clock."""
    from reconciler.podspec import KIND_LABEL, MANAGED_BY_LABEL, MANAGED_BY_VALUE
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


def _ticks() -> float:
    from reconciler import metrics

    return (
        metrics.REGISTRY.get_sample_value("reconciler_reconciles_total", {"trigger": "tick"}) or 0.0
    )


def test_a_backward_wall_clock_step_stalls_neither_the_tick_nor_the_autoscale_windows(
    zk_hosts: str,
    pg_url: str,
    kube: Any,
    kube_namespace: str,
    kazoo_client: Any,
    tmp_path: Path,
) -> None:
    import sqlalchemy as sa
    from kubernetes import client as k8s

    from reconciler.adapters.inventory import insert_ids
    from rig import podmetrics_standin
    from tests.chaos import invariants
    from tests.integration.daemon import running, settings_for
    from tests.integration.fleet import seed, uuids, write_policy

    api = kube.api_client()
    podmetrics_standin.install(api)
    seed(pg_url, things=60, rules=10)
    policy = write_policy(
        tmp_path / "policy.yaml",
        kube_namespace,
        tick=1,
        Thing={"initInstances": 3, "maxInstances": 10, "autoscale": AUTOSCALE},
        Rule={"initInstances": 3},
    )
    engine = sa.create_engine(pg_url)
    core = k8s.CoreV1Api(api)
    kinds = invariants.kinds_of(policy.read_text())

    def sound() -> bool:
        return invariants.check(kazoo_client, engine, core, kinds) == []

    def things() -> int:
        return len(invariants.read_layout(kazoo_client, "Thing"))

    try:
        with running(settings_for(zk_hosts, pg_url, kube, policy)) as d:
            daemon, scaler = d.app.daemon, d.app.daemon.ports.autoscaler
            assert scaler is not None
            eventually(sound, timeout=60)
            _usage(api, kube_namespace, range(3), "250m")  # 2x the target: 3 -> 6 instances
            eventually(lambda: things() == 6 and sound(), timeout=60)
            _usage(api, kube_namespace, range(6), "125m")  # at target: 6 holds

            # The step: the daemon's wall clock now reads an hour earlier.
            stepped_at, ticks = time.monotonic(), _ticks()
            true_wall = daemon.ports.wall
            daemon.ports.wall = lambda: true_wall() - STEP_S
            assert daemon.read is not None
            daemon.read.wall = daemon.ports.wall
            _usage(api, kube_namespace, range(6), "25m")  # 10 %: down to the row minimum, 3
            insert_ids(pg_url, "Thing", uuids(15))  # no MQTT hint: only a tick finds them
            eventually(lambda: things() == 3 and sound(), timeout=60)
            down_s = time.monotonic() - stepped_at
            tick_rate = (_ticks() - ticks) / down_s
            decision = scaler.decisions["Thing"]
            status = daemon.status()["kinds"]["Thing"]["autoscale"]

            # The window held the scale-down for its 3 s of monotonic time, not an hour.
            assert decision.final == 3 and down_s >= AUTOSCALE["scaleDownWindowSeconds"]
            assert tick_rate >= 0.5, f"{tick_rate:.2f} ticks/s with tickSeconds 1"
            assert status["at"] < time.time() - STEP_S + 60  # shown in the daemon's wall time

            # And the clock steps forward again: nothing moves, ticks go on.
            daemon.ports.wall = daemon.read.wall = true_wall
            ticks = _ticks()
            time.sleep(3)
            assert _ticks() - ticks >= 1.5 and things() == 3 and sound()
            print(
                f"\nFIGURE backward clock step: scaled 6 -> 3 and 15 new rows assigned "
                f"{down_s:.1f}s after the step, {tick_rate:.2f} ticks/s meanwhile"
            )
    finally:
        engine.dispose()
        api.close()
