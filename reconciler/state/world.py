"""What the last pass saw of each kind and the assignment it left (what it observed, with its
successful writes applied): written by record, read by observe on event passes (this daemon
is the assignment's only writer) and by the read side."""

from __future__ import annotations

import threading
from collections.abc import Mapping

from reconciler.domain.model import Assignment, KindObserved, PassResult, Pod, applied
from reconciler.domain.outcomes import OutcomeResult, System
from reconciler.state.part import MemoryPart

# A ZooKeeper write with one of these results may have landed, or met another writer (a
# compare-and-set conflict): the assignment it leaves is a guess until read again.
_UNSURE = (OutcomeResult.FAILED, OutcomeResult.PENDING)


class LastWorld(MemoryPart):
    def __init__(self, lock: threading.RLock | None = None) -> None:
        super().__init__(lock)
        self._observed: dict[str, KindObserved] = {}
        self._assignments: dict[str, Assignment] = {}
        self._acting: set[str] = set()  # kinds whose assignment a leader's pass left

    def record(self, result: PassResult, observed: Mapping[str, KindObserved]) -> None:
        """Remember what a pass saw and the assignment its successful writes left."""
        with self._lock:
            self._observed.update(observed)
            for kind, obs in observed.items():
                if obs.assignment is None:
                    continue
                mine = [o for o in result.outcomes if o.op.kind == kind]
                done = [o.op for o in mine if o.result is OutcomeResult.OK]
                self._assignments[kind] = applied(obs.assignment, done)
                unsure = any(o.op.system is System.ZOOKEEPER and o.result in _UNSURE for o in mine)
                if result.standby or unsure:
                    # A standby's view may be stale by the leader's writes; an unsure write
                    # may have changed ZooKeeper: the next pass reads ZooKeeper again.
                    self._acting.discard(kind)
                else:
                    self._acting.add(kind)

    def assignment(self, kind: str, *, trusted: bool = False) -> Assignment | None:
        """The kind's assignment as the last pass left it. `trusted`: only if that pass acted
        (a leader's): a standby's view may be stale by the leader's writes since, so a pass
        that acts on it must read ZooKeeper first."""
        with self._lock:
            a = self._assignments.get(kind)
            if a is None or (trusted and kind not in self._acting):
                return None
            return dict(a)

    def assignments(self) -> dict[str, Assignment]:
        """A copy of every kind's, for the read side."""
        with self._lock:
            return {k: dict(v) for k, v in self._assignments.items()}

    def pods(self) -> dict[str, dict[str, Pod] | None]:
        """The pods the last pass saw of each kind (None: it could not list them)."""
        with self._lock:
            return {k: o.pods for k, o in self._observed.items()}
