"""The rows of each table, pulled again only when the table changed.

Pulling every id of a large table costs time in proportion to its rows and a fresh copy of
every id; asking PostgreSQL for the table's fingerprint (its row count and the sum of its
ids' 64-bit hashes, `Inventory.fingerprint`) costs a fraction of that and nothing in memory
(docs/benchmarks.md has the figures). `CachedRows` asks for the fingerprint first and pulls
the ids only when it moved, or when the last pull is older than `full_read_seconds`
(RECONCILER_FULL_READ_SECONDS; 0 pulls on every call).
A database without the hash (SQLite, the embedded default) is pulled every time.

An unchanged table answers with the very same set as before, so its `SortedIds.version`
with it: the planner tells "nothing changed" by that version (the contract is SortedIds'),
and no second copy of a million ids is made.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass

from reconciler.adapters.sql.inventory import Inventory
from reconciler.telemetry import metrics

FULL_READ_SECONDS = 300.0


@dataclass(frozen=True, slots=True)
class _Pulled:
    fingerprint: tuple[int, int]
    ids: AbstractSet[str]
    at: float  # monotonic


class CachedRows:
    """The `Rows` port over an `Inventory`, with a fingerprint-checked cache per table."""

    def __init__(
        self,
        inventory: Inventory,
        *,
        full_read_seconds: float = FULL_READ_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.inventory = inventory
        self.full_read_seconds = full_read_seconds
        self._clock = clock
        self._pulled: dict[str, _Pulled] = {}
        self.pulls = 0  # full reads of a table's ids (tests and benchmarks count them)

    def ids(self, table: str) -> AbstractSet[str]:
        """Every id of `table`: the cached set while the table's fingerprint holds."""
        now = self._clock()
        fingerprint = self.inventory.fingerprint(table)
        last = self._pulled.get(table)
        if (
            last is not None
            and fingerprint == last.fingerprint
            and now - last.at < self.full_read_seconds
        ):
            return last.ids
        self._pulled.pop(table, None)  # let the old copy go before the new one is built
        ids = self.inventory.ids(table)
        self.pulls += 1
        metrics.DB_ID_READS.labels(table).inc()
        if fingerprint is not None:
            # A change between the fingerprint and the pull makes the next call pull again.
            self._pulled[table] = _Pulled(fingerprint, ids, now)
        return ids

    def adopt(self, table: str, ids: AbstractSet[str]) -> None:
        """Answer `ids` (equal to the last pull, the strings the daemon already held) from
        now on, and let the pull's own copy go."""
        last = self._pulled.get(table)
        if last is not None:
            self._pulled[table] = _Pulled(last.fingerprint, ids, last.at)

    def present(self, table: str, ids: Iterable[str]) -> frozenset[str]:
        return self.inventory.present(table, ids)

    def count(self, table: str) -> int:
        return self.inventory.count(table)
