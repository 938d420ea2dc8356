"""The order observe reads the kinds in: those the last pass's budget did not reach go first.

A pass shares its budget among the kinds in turn (reconciler/reconcile/budget.py). In the
policy's order every pass, a kind whose reads hang (a frozen server) at the head of it would
spend the budget each time and starve the kinds after it for good; so the kinds a pass did
not get to open the next one, in the order they were waiting, and the budget rotates.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

from reconciler.state.part import MemoryPart


class ObserveTurns(MemoryPart):
    def __init__(self, lock: threading.RLock | None = None) -> None:
        super().__init__(lock)
        self._waiting: list[str] = []  # kinds a pass did not get to, in the order they waited

    def order(self, kinds: Iterable[str]) -> list[str]:
        """`kinds` in the order to read them: the waiting ones first, then the rest as given."""
        given = list(kinds)
        with self._lock:
            first = [k for k in self._waiting if k in given]
        return first + [k for k in given if k not in first]

    def note(self, order: list[str], reached: Iterable[str]) -> None:
        """A pass read the kinds of `order` it `reached`; the others wait, ahead of any still
        waiting from before that this pass did not look at."""
        seen = set(reached)
        with self._lock:
            skipped = [k for k in order if k not in seen]
            self._waiting = skipped + [k for k in self._waiting if k not in order]

    def waiting(self) -> list[str]:
        with self._lock:
            return list(self._waiting)
