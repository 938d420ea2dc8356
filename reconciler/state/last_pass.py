"""The last pass, as record left it: what its plan said of each kind and what became of it.
Read by record itself (a state such as "over capacity" is logged when it changes), by the
loop and by the read side."""

from __future__ import annotations

import threading

from reconciler.domain.model import KindReport, PassResult
from reconciler.state.part import MemoryPart


class LastPass(MemoryPart):
    def __init__(self, lock: threading.RLock | None = None) -> None:
        super().__init__(lock)
        self._reports: dict[str, KindReport] = {}  # a kind's last plan, whichever pass it was
        self._result: PassResult | None = None
        self._at: float | None = None  # Unix seconds

    def record(self, result: PassResult, at: float) -> None:
        with self._lock:
            self._reports.update(result.plan.reports)
            self._result, self._at = result, at

    def report(self, kind: str) -> KindReport | None:
        """What the last pass's plan said of `kind`."""
        with self._lock:
            return self._reports.get(kind)

    def reports(self) -> dict[str, KindReport]:
        with self._lock:
            return dict(self._reports)

    @property
    def result(self) -> PassResult | None:
        with self._lock:
            return self._result

    @property
    def at(self) -> float | None:
        with self._lock:
            return self._at
