"""tests/chaos/run.py's Draw and clock.py's reading of a stepped daemon's stamps, without the
rig: which fault comes next, and when a daemon's log line was written on the machine's clock."""

from __future__ import annotations

import random
from pathlib import Path

from tests.chaos.clock import DaemonClock
from tests.chaos.run import Draw
from tests.chaos.timefaults import ALL_FAULTS, FAMILIES


def test_within_a_family_each_fault_comes_once_before_any_comes_twice() -> None:
    draw = Draw(random.Random(1), sorted(ALL_FAULTS))
    seen: dict[str, list[str]] = {f: [] for f in FAMILIES}
    family_of = {n: f for f, members in FAMILIES.items() for n in members}
    for _ in range(400):
        name = draw.next()
        if name != "sigkill_mid_apply":
            seen[family_of[name]].append(name)
    for family, names in seen.items():
        size = len(FAMILIES[family])
        for start in range(0, len(names) - size + 1, size):
            assert sorted(names[start : start + size]) == FAMILIES[family], family


def test_a_subset_draws_only_from_itself_and_kills_only_when_named() -> None:
    draw = Draw(random.Random(2), ["clock_back", "kafka_down"])
    assert {draw.next() for _ in range(50)} == {"clock_back", "kafka_down"}
    kills = Draw(random.Random(2), ["sigkill_mid_apply"])
    assert {kills.next() for _ in range(5)} == {"sigkill_mid_apply"}


def test_a_stepped_daemons_stamp_is_read_on_the_machines_clock(tmp_path: Path) -> None:
    clock = DaemonClock(tmp_path)
    assert tmp_path.joinpath("faketime").read_text() == "+0\n"
    clock.steps.append((1000.0, 600))  # stepped forward at machine time 1000
    clock.steps.append((2000.0, -100))  # then back 700 s at 2000
    assert clock.true_time(990.0, 990.3) == 990.0  # before the steps
    assert clock.true_time(1600.0 + 600, 1600.1) == 1600.0  # between the steps
    assert clock.true_time(2100.0 - 100, 2100.1) == 2100.0  # after the step back
    assert clock.step(+300) == 200 and tmp_path.joinpath("faketime").read_text() == "+200\n"
