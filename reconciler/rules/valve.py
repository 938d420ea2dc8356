"""The safety valve: a plan that would unassign a large share of a kind's ids, or delete many
of its pods, is held instead of applied (Apache Helix pauses rebalancing when too many
instances go offline at once).

`judge` is pure (the plan and what the assignment holds now in, a verdict out); `ValveState`
is one kind's memory between passes, kept in DaemonState. An emptied table (a wrong
schema, missing permissions, an emptied replica) reads as "every row was deleted": the valve
holds that plan until the same picture has held for `confirm_passes` full passes or an
operator confirms (`reconciler confirm <Kind>`, REST `.../<Kind>/confirm`). Only the
destructive operations are held; pods are still healed and adopted meanwhile.

An operator's own `reconciler scale`/`stop`/`start` is its confirmation: the plan it leads to
goes ahead (`authorized`, until a pass applies the kind's plan without a failure), and so
does any plan while a pinned kind's instance count differs from its pin (a new leader
finishing a scale it did not see asked). A later drastic plan of the kind is held again.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable
from dataclasses import dataclass

from reconciler.domain.ids import SortedIds, same_ids
from reconciler.domain.model import (
    Assignment,
    DeleteInstance,
    DeletePod,
    Op,
    WriteInstance,
    applied,
)

# Held while tripped: what takes ids off instances or removes pods. Creates, recreations of
# dead pods and adoptions go ahead.
HELD_OPS = (WriteInstance, DeleteInstance, DeletePod)


@dataclass(frozen=True, slots=True)
class ValveLimits:
    max_unassign_share: float = 0.5  # of the ids assigned now
    min_unassign_ids: int = 50  # below this many ids leaving, never trip (small fleets)
    max_pod_deletes: int = 10
    confirm_passes: int = 3  # full passes with the valve tripped before it lets go


@dataclass(frozen=True, slots=True)
class Verdict:
    """Why a kind's plan is drastic (None: it is not)."""

    unassigned: int  # ids this plan takes off every instance
    assigned: int  # ids on instances before it
    pod_deletes: int
    reason: str | None


def judge(current: Assignment, ops: Iterable[Op], limits: ValveLimits) -> Verdict:
    """Is the plan for one kind (`ops`, on top of `current`) drastic?

    Only the instances the plan writes or deletes are looked at: a converged pass (no ops)
    costs nothing at a million ids, a normal one the size of what it changes."""
    ops = list(ops)
    assigned = sum(inst.used for inst in current.values())
    after_assignment = applied(current, ops)
    changed = {
        i
        for i in current.keys() | after_assignment.keys()
        if i not in after_assignment
        or i not in current
        or not same_ids(after_assignment[i].ids, current[i].ids)
    }
    lost: set[str] = set()
    for i in changed:
        if i in current:
            lost.update(
                current[i].ids - (after_assignment[i].ids if i in after_assignment else set())
            )
    # Moved, not lost; or still held by an instance the plan leaves be. Each instance is
    # asked only about the lost ids within its own range of ids (`lost -= ids` would walk
    # every id of every instance, `lost & ids` every lost id for every instance).
    pool = sorted(lost)
    for inst in after_assignment.values():
        if not lost:
            break
        ordered = inst.ids.ordered if isinstance(inst.ids, SortedIds) else sorted(inst.ids)
        if ordered:
            lo = bisect_left(pool, ordered[0])
            hi = bisect_right(pool, ordered[-1], lo)
            if hi > lo:
                lost -= inst.ids & frozenset(pool[lo:hi])
    unassigned = len(lost)
    pod_deletes = sum(isinstance(op, DeletePod) for op in ops)
    reason = None
    if (
        unassigned >= limits.min_unassign_ids
        and assigned
        and unassigned / assigned > limits.max_unassign_share
    ):
        reason = (
            f"would unassign {unassigned} of {assigned} ids (over {limits.max_unassign_share:.0%})"
        )
    elif pod_deletes > limits.max_pod_deletes:
        reason = f"would delete {pod_deletes} pods (over {limits.max_pod_deletes})"
    return Verdict(unassigned, assigned, pod_deletes, reason)


def held(ops: Iterable[Op]) -> tuple[list[Op], list[Op]]:
    """Split a kind's ops into (go ahead, held)."""
    go, hold = [], []
    for op in ops:
        (hold if isinstance(op, HELD_OPS) else go).append(op)
    return go, hold


@dataclass
class ValveState:
    """One kind's valve between passes (kept in DaemonState): tripped since `passes` full
    passes with a drastic plan, or confirmed by an operator."""

    reason: str | None = None
    passes: int = 0
    confirmed: bool = False  # an operator said go: the next pass applies the held plan
    authorized: bool = False  # an operator's scale/stop/start: the plan it leads to goes ahead

    def decide(
        self, reason: str | None, *, full: bool, confirm_passes: int, operator: bool = False
    ) -> tuple[bool, str | None]:
        """Hold the plan judged `reason` (None: not drastic)? Returns (hold, news to log).
        `operator`: the plan carries out an operator's pin (see the module's docstring)."""
        if reason is None:
            was = self.reason
            self._reset()
            return False, "released: the plan is no longer drastic" if was else None
        if self.confirmed:
            self._reset()
            return False, f"released by an operator: {reason}"
        if self.authorized or operator:
            self.reason, self.passes = None, 0
            return False, f"let through: an operator's scale, stop or start asked for it ({reason})"
        news = None if self.reason == reason else f"engaged: {reason}"
        self.reason = reason
        if full:
            self.passes += 1
        if self.passes >= confirm_passes:
            self._reset()
            return False, f"released: the same picture held for {confirm_passes} passes"
        return True, news

    def authorize(self) -> None:
        """An operator's scale, stop or start: the plan it leads to is confirmed."""
        self.authorized = True

    def carried_out(self) -> None:
        """A pass applied the kind's plan without a failure: the authorization is used."""
        self.authorized = False

    def confirm(self) -> bool:
        if self.reason is None:
            return False
        self.confirmed = True
        return True

    def summary(self) -> dict[str, object]:
        return {"engaged": self.reason is not None, "reason": self.reason, "passes": self.passes}

    def _reset(self) -> None:
        self.reason, self.passes, self.confirmed = None, 0, False
