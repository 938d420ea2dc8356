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
def world(zk: Any, pg: Any, mqtt: Any, kafka: Any, kube: Any,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    w = World(Servers(zk, pg, mqtt, kafka, kube), tmp_path_factory.mktemp("faults"),
              random.Random(12))
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
            f"killed {injected.kill_point}, {seconds:.1f}s after restart: {violations}")


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
        eventually(lambda: (world.status() or {})["kinds"]["Thing"]["valve"]["engaged"],
                   timeout=3 * TICK_SECONDS)
        assert read_layout(world.kazoo, "Thing") == before
        assert live_pods(world.core, ns) == pods
        done = faults.confirm(world, "Thing")
        assert done.returncode == 0, done.stderr
        eventually(lambda: all(not inst.ids for inst in read_layout(world.kazoo, "Thing")
                               .values()), timeout=6 * TICK_SECONDS)
    finally:
        faults._refill(world)
    seconds, violations = world.converge(time.time())
    assert violations == [], f"{seconds:.1f}s after the rows came back: {violations}"


def test_a_short_seeded_chaos_run_ends_with_its_summary_line_and_no_violation(
    tmp_path: Path,
) -> None:
    done = subprocess.run([sys.executable, "-m", "tests.chaos", "--seed", "1", "--minutes", "0.5"],
                          cwd=REPO, capture_output=True, text=True, timeout=480, check=False)
    lines = done.stdout.strip().splitlines()
    assert lines, done.stderr[-3000:]
    match = LAST_LINE.match(lines[-1])
    assert match, f"last line {lines[-1]!r}\n{done.stderr[-3000:]}"
    assert int(match.group(2)) >= 1, done.stdout
    assert match.group(1) == "0", done.stdout
    assert done.returncode == 0
