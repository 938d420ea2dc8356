"""The one narrow interface the surfaces (REST, the fleet page) have into a running daemon.

Three kinds of call, nothing else: request a pass (`orchestrate`, `restart`, `confirm`), read
a snapshot (`read`, `row_count`, `standby`, `standby_of`, `identity`, `liveness_problem`,
`observe_only`, `plan`), set an override (`pin`).
Handlers never reach into the daemon's state or build wake-ups themselves: each request wakes
the loop here, and the loop's own thread carries it out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from reconciler.domain.model import PassResult
from reconciler.domain.pins import Pin
from reconciler.policy.schema import KindPolicy
from reconciler.reconcile.operations import pin_kind
from reconciler.runtime.loop import Daemon, Wake, WakeReason
from reconciler.runtime.pending import plan_document
from reconciler.runtime.status import ReadSide


@dataclass(frozen=True)
class Standby:
    """This daemon does not lead: who it is, who leads (None: none known, while an election
    is under way or ZooKeeper is unreachable) and where the leader's REST API is (None:
    unknown, or the leader publishes no address)."""

    identity: str
    leader: str | None
    leader_url: str | None = None


class Control:
    def __init__(self, daemon: Daemon) -> None:
        assert daemon.read is not None
        self._daemon = daemon
        self.read: ReadSide = daemon.read  # every GET renders from the read side

    # --- read a snapshot ----------------------------------------------------------------

    def policy(self, kind: str) -> KindPolicy | None:
        return self.read.policy(kind)

    def kinds(self) -> list[str]:
        return list(self.read.kinds())

    def row_count(self, kind: str) -> int | None:
        """The rows of `kind` the daemon knows of (None: not read yet)."""
        return self._daemon.state.row_count(kind)

    def standby(self) -> Standby | None:
        """None while this daemon applies writes itself (it leads, or runs without an
        election); else who it is, who leads and where (the API forwards writes there)."""
        election = self._daemon.ports.leadership
        if election is None or election.is_leader:
            return None
        return Standby(election.identity, election.leader(), election.leader_url())

    def standby_of(self) -> Standby | None:
        """Who leads, when this daemon is a standby and a leader is known (else None)."""
        standby = self.standby()
        return standby if standby is not None and standby.leader is not None else None

    def identity(self) -> str | None:
        """This daemon's name in the election (None: it runs without one)."""
        election = self._daemon.ports.leadership
        return election.identity if election is not None else None

    def liveness_problem(self) -> str | None:
        """None while the loop makes progress (`reconciler/runtime/liveness.py`)."""
        return self._daemon.liveness.problem()

    @property
    def observe_only(self) -> bool:
        """RECONCILER_OBSERVE_ONLY: this daemon plans and writes nothing (no POST applies)."""
        return self._daemon.ports.observe_only

    def plan(self) -> dict[str, Any]:
        """`GET /v1/plan`: per kind, what the last pass planned and did not carry out
        (`reconciler/runtime/pending.py`)."""
        sources = self._daemon.state.view().source_errors
        return plan_document(self._daemon.pending.plans(), role=self.read.role(), sources=sources)

    # --- request a pass -----------------------------------------------------------------

    def orchestrate(self, kind: str, overrides: dict[str, int] | None) -> PassResult:
        """Rebalance `kind` now; blocks until the pass that does it has run."""
        return self._daemon.orchestrate(kind, overrides)

    def restart(self, kind: str) -> None:
        """A rolling restart of `kind`'s pods, begun by the next pass (woken now)."""
        self._daemon.state.request_restart(kind)
        self._daemon.wake(Wake(WakeReason.TICK))

    def confirm(self, kind: str) -> str | None:
        """Let the plan the safety valve holds for `kind` go ahead; what it would do, or None
        when nothing is held."""
        held = str(self._daemon.state.valve(kind).get("reason"))
        if not self._daemon.state.valve_confirm(kind):
            return None
        self._daemon.wake(Wake(WakeReason.TICK))
        return held

    # --- set an override ----------------------------------------------------------------

    def pin(self, kind: str, instances: int | None, by: str, at: float) -> Pin | None:
        """Pin `kind` at `instances` (0 stops it, None returns it to its policy); the pin it
        replaces. Raises what the pin store raises: then nothing changed."""
        previous = pin_kind(self._daemon.state, self._daemon.ports.pins, kind, instances, by, at)
        self._daemon.wake(Wake(WakeReason.TICK))
        return previous
