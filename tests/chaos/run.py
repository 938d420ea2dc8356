"""The chaos driver: churn, a random fault, recovery judged by the invariant checker, again,
for a given time. Same seed, same sequence of faults and kill points (the timings are the
machine's). The faults are drawn from a generator of their own, so what a fault draws for
itself does not change which fault comes next: a SIGKILL about 4 times in 10, else a family
(timefaults.FAMILIES: process, network, time) and within it each fault once before any twice."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from tests.chaos.faults import Injected
from tests.chaos.timefaults import ALL_FAULTS as FAULTS
from tests.chaos.timefaults import FAMILIES, unavailable
from tests.chaos.world import World

KILL_SHARE = 0.4


def _sentence(violation: str) -> str:
    """A violation without the daemon's state that `World.converge` appends to the last one
    (that state differs at every judgement; the violation does not)."""
    return violation.split(" (daemon sources ", 1)[0]


@dataclass
class Summary:
    faults: int = 0
    kills: int = 0
    violations: list[str] = field(default_factory=list)
    convergence: dict[str, float] = field(default_factory=dict)  # fault -> worst seconds
    tried: dict[str, int] = field(default_factory=dict)  # fault -> times injected
    kill_points: list[str] = field(default_factory=list)

    @property
    def worst(self) -> float:
        return max(self.convergence.values(), default=0.0)

    def record(self, injected: Injected, seconds: float, violations: list[str]) -> None:
        self.faults += 1
        self.tried[injected.fault] = self.tried.get(injected.fault, 0) + 1
        if injected.kill_point is not None:
            self.kills += 1
            self.kill_points.append(injected.kill_point)
        self.convergence[injected.fault] = max(self.convergence.get(injected.fault, 0.0), seconds)
        self.add(injected.fault, violations)

    def add(self, label: str, violations: list[str]) -> list[str]:
        """Record `violations` under `label`, but those already recorded: a blind deletion stays
        in the record, so it is counted once, under the first judgement that found it (the
        sentence names the fault's window). Returns the new ones."""
        seen = {_sentence(v.split(": ", 1)[1]) for v in self.violations}
        new = [v for v in violations if _sentence(v) not in seen]
        self.violations += [f"{label}: {v}" for v in new]
        return new

    def last_line(self) -> str:
        return (
            f"violations={len(self.violations)} faults={self.faults} kills={self.kills} "
            f"worst_convergence_s={self.worst:.1f}"
        )


class Draw:
    """Which fault comes next, among `names` (see the module's docstring)."""

    def __init__(self, rng: random.Random, names: list[str]) -> None:
        self.rng = rng
        self.kill = "sigkill_mid_apply" in names
        families = {f: [n for n in members if n in names] for f, members in FAMILIES.items()}
        self.families = {f: members for f, members in families.items() if members}
        self._decks: dict[str, list[str]] = {}

    def next(self) -> str:
        # Kills are cheap and where a write order shows: about 4 in 10 faults, when allowed.
        if self.kill and (not self.families or self.rng.random() < KILL_SHARE):
            return "sigkill_mid_apply"
        family = self.rng.choice(sorted(self.families))
        if not self._decks.get(family):
            self._decks[family] = list(self.families[family])
            self.rng.shuffle(self._decks[family])
        return self._decks[family].pop()


def inject_and_judge(
    world: World, name: str, rng: random.Random
) -> tuple[Injected, float, list[str]]:
    """Churn a little, inject `name`, and judge the recovery."""
    world.churn.running.set()
    time.sleep(rng.uniform(0.5, 2.0))
    injected = FAULTS[name](world, rng)
    seconds, violations = world.converge(injected.recovered, injected.degraded)
    violations = injected.violations + violations
    if injected.undo is not None:
        injected.undo()
        # The fleet is judged as before; that the daemon forgets the kind's errors is
        # test_faults.py's own test.
        _, more = world.converge(time.time(), injected.degraded)
        violations = violations + more
    return injected, seconds, violations


def chaos(
    world: World,
    rng: random.Random,
    minutes: float,
    names: list[str] | None = None,
    say: Callable[[str], None] = print,
) -> Summary:
    summary = Summary()
    seconds, violations = world.converge(time.time() - 0.0)
    say(f"start converged_s={seconds:.1f} violations={len(violations)}")
    summary.violations += [f"start: {v}" for v in violations]
    names = list(names or sorted(FAULTS))
    for name, why in sorted(unavailable(world).items()):
        if name in names:
            say(f"skipped {name}: {why}")
            names.remove(name)
    draw = Draw(random.Random(rng.getrandbits(64)), names)
    end = time.monotonic() + minutes * 60
    while time.monotonic() < end:
        name = draw.next()
        injected, seconds, violations = inject_and_judge(world, name, rng)
        summary.record(injected, seconds, violations)
        where = f" kill_point={injected.kill_point!r}" if injected.kill_point else ""
        say(
            f"fault={name} converged_s={seconds:.1f} violations={len(violations)}"
            f"{where}{injected.detail}"
        )
        for v in violations:
            say(f"  violation: {v}")
    # The last fault's deletions are judged once their instances have been followed long
    # enough (podwatch.py: a deletion may count only a settle time after it).
    counted = world.settled_blind_deletions()
    for v in summary.add("end", counted):
        say(f"  violation: {v}")
    say(
        f"pod deletions in blind windows: {world.deletions_while_blind()}, "
        f"{len(counted)} counted against the daemon"
    )
    for fault, n in sorted(summary.tried.items()):
        say(f"tried {fault!r} {n}x, worst convergence {summary.convergence[fault]:.1f}s")
    return summary
