"""Which sources each kind could not read on its last try: written by observe's reads.

Per (source, kind): one kind's missing table or forbidden namespace is that kind's fault;
the others read fine, and the log does not flap between "unavailable" and "back".
"""

from __future__ import annotations

import threading
from collections.abc import Container

from reconciler.state.part import MemoryPart
from reconciler.state.snapshot import errors_by_source


class SourceHealth(MemoryPart):
    def __init__(self, lock: threading.RLock | None = None) -> None:
        super().__init__(lock)
        self._errors: dict[tuple[str, str], str] = {}  # (source, kind) -> error

    def failed(self, source: str, kind: str, error: str) -> bool:
        """Note a source as unreadable for `kind`; True if that is news (or a new error)."""
        with self._lock:
            news = self._errors.get((source, kind)) != error
            self._errors[(source, kind)] = error
            return news

    def recovered(self, source: str, kind: str) -> bool:
        """Note a source as readable for `kind`; True if it had been unavailable."""
        with self._lock:
            return self._errors.pop((source, kind), None) is not None

    def down(self, source: str) -> bool:
        """True while `source` cannot be read for some kind."""
        with self._lock:
            return any(s == source for s, _ in self._errors)

    def degraded(self, kind: str) -> dict[str, str]:
        """What `kind` cannot read now: source -> error (empty: healthy)."""
        with self._lock:
            return {s: e for (s, k), e in self._errors.items() if k == kind}

    @property
    def blind(self) -> bool:
        """True while any source is unavailable for any kind."""
        with self._lock:
            return bool(self._errors)

    def keep_kinds(self, kinds: Container[str]) -> None:
        """Only these kinds are read now: a kind's errors would otherwise stay for good."""
        with self._lock:
            for key in [k for k in self._errors if k[1] not in kinds]:
                del self._errors[key]

    def by_source(self) -> dict[str, str]:
        """source -> "<Kind>: <error>; ..." for the kinds it fails, for the read side."""
        with self._lock:
            return errors_by_source(self._errors)
