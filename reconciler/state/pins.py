"""Operators' pins (reconciler/domain/pins.py) as last read from ZooKeeper by observe, or set
through REST (reconcile/operations.py). Until a first read succeeds nothing is known of them,
and no kind is acted on."""

from __future__ import annotations

import threading
from collections.abc import Mapping

from reconciler.domain.pins import Pin
from reconciler.state.part import MemoryPart


class KnownPins(MemoryPart):
    def __init__(self, lock: threading.RLock | None = None) -> None:
        super().__init__(lock)
        self._pins: dict[str, Pin] = {}
        self._known = False
        self._generation = 0  # pins set through REST so far: a read begun before one is stale

    def generation(self) -> int:
        with self._lock:
            return self._generation

    def read(self, pins: Mapping[str, Pin], generation: int) -> None:
        """The pins ZooKeeper held when `generation()` was `generation` (every daemon reads
        them on its full passes); ignored if an operator pinned a kind meanwhile."""
        with self._lock:
            if generation == self._generation:
                self._pins, self._known = dict(pins), True

    def known(self) -> bool:
        with self._lock:
            return self._known

    def pinned(self, kind: str) -> Pin | None:
        with self._lock:
            return self._pins.get(kind)

    def set(self, kind: str, pin: Pin | None) -> None:
        """An operator pinned `kind` (None: unpinned, `start`), already written to ZooKeeper;
        `DaemonState.set_pin` also lets the valve pass the plan this leads to."""
        with self._lock:
            if pin is None:
                self._pins.pop(kind, None)
            else:
                self._pins[kind] = pin
            self._generation += 1

    def all(self) -> dict[str, Pin]:
        """A copy, for the read side."""
        with self._lock:
            return dict(self._pins)
