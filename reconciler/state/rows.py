"""The rows of each kind as last read from the database, patched by row hints in between.

Written by observe (a full pass's fresh read) and by the loop's row hints (checked against the
database, reconcile/hints.py); read by observe on event passes. When the database is down the
daemon keeps what it knows instead of forgetting every row.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from collections.abc import Set as AbstractSet

from reconciler.domain.ids import share
from reconciler.domain.patched_ids import patch
from reconciler.state.part import MemoryPart


class KnownRows(MemoryPart):
    def __init__(self, lock: threading.RLock | None = None) -> None:
        super().__init__(lock)
        self._rows: dict[str, AbstractSet[str]] = {}

    def get(self, kind: str) -> AbstractSet[str] | None:
        """The ids of `kind`'s table as last read and patched (immutable: shared, never
        copied; a million ids cost a copy's time and memory)."""
        with self._lock:
            return self._rows.get(kind)

    def count(self, kind: str) -> int | None:
        with self._lock:
            known = self._rows.get(kind)
            return len(known) if known is not None else None

    def counts(self) -> dict[str, int]:
        """kind -> number of rows known, for the read side."""
        with self._lock:
            return {k: len(v) for k, v in self._rows.items()}

    def remember(self, kind: str, ids: AbstractSet[str]) -> AbstractSet[str]:
        """Keep a fresh read of the rows; returns them as kept (sharing the strings of the
        last read: ids.share)."""
        with self._lock:
            kept = self._rows[kind] = share(self._rows.get(kind), ids)
            return kept

    def patch(self, kind: str, added: Iterable[str], removed: Iterable[str]) -> bool:
        """Apply a row event to the known ids; True if it changed anything. Costs the ids
        the event names, not the table's (domain/patched_ids.py)."""
        with self._lock:
            known = self._rows.get(kind)
            if known is None:
                return False  # never read the table yet: the next full pass will
            patched = patch(known, added, removed)
            if patched is None:
                return False
            self._rows[kind] = patched
            return True
