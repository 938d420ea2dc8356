"""The safety valve's memory of each kind (reconciler/rules/valve.py): written by guard as it
judges each plan, by operators who confirm a held plan or pin a kind, and by record once a
kind's plan is carried out."""

from __future__ import annotations

import threading

from reconciler.rules.valve import ValveState
from reconciler.state.part import MemoryPart


class Valves(MemoryPart):
    def __init__(self, lock: threading.RLock | None = None) -> None:
        super().__init__(lock)
        self._by_kind: dict[str, ValveState] = {}

    def decide(
        self, kind: str, reason: str | None, *, full: bool, confirm_passes: int, operator: bool
    ) -> tuple[bool, str | None]:
        """Hold this kind's drastic plan? Returns (hold, news): news is what to log, once.
        `operator`: the plan carries out an operator's pin."""
        with self._lock:
            return self._by_kind.setdefault(kind, ValveState()).decide(
                reason, full=full, confirm_passes=confirm_passes, operator=operator
            )

    def confirm(self, kind: str) -> bool:
        """An operator confirms the held plan of `kind`; False when nothing is held."""
        with self._lock:
            return self._by_kind.setdefault(kind, ValveState()).confirm()

    def authorize(self, kind: str) -> None:
        """An operator's scale, stop or start: the plan it leads to goes ahead."""
        with self._lock:
            self._by_kind.setdefault(kind, ValveState()).authorize()

    def carried_out(self, kind: str) -> None:
        """A pass applied the kind's plan without a failure: an authorization is used."""
        with self._lock:
            valve = self._by_kind.get(kind)
            if valve is not None:
                valve.carried_out()

    def summary(self, kind: str) -> dict[str, object]:
        with self._lock:
            return (self._by_kind.get(kind) or ValveState()).summary()
