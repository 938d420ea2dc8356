"""Row events are hints: which ids to look at again, never what to believe.

A `cm/notify` message says "these ids were created" or "deleted"; anyone who can publish on
the broker can say that. So the loop asks the database about exactly the ids the events of a
batch name (one batched lookup per table: the fast path stays fast) and patches its rows with
the answer: an id is added if the table holds it now, removed if it does not, whatever the
message claimed. A forged `bc` assigns nothing the table lacks; a forged `bd` removes nothing
it holds. The truth also settles order within a batch (a create and a delete of one id).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass

from reconciler.domain.events import RowEvent
from reconciler.reconcile.ports import Rows
from reconciler.state.daemon import DaemonState
from reconciler.telemetry import metrics
from reconciler.telemetry.logs import ThrottledLog


@dataclass(frozen=True, slots=True)
class CheckedRows:
    """What the database said about the ids a batch's events named, for one table."""

    table: str
    present: frozenset[str]  # named ids the table holds now: assigned
    absent: frozenset[str]  # named ids it does not hold: unassigned
    not_in_table: int  # ids claimed created that the table lacks (rejected claims)
    still_in_table: int  # ids claimed deleted that it still holds (rejected claims)


def check_row_events(rows: Rows, events: Iterable[RowEvent]) -> list[CheckedRows]:
    """Look up every id the `events` name, one batched query per table.

    Raises what `rows.present` raises (`SourceUnavailable` when the database cannot be asked):
    then nothing is patched and the next full read decides."""
    claims: dict[str, tuple[set[str], set[str]]] = {}
    for event in events:
        added, removed = claims.setdefault(event.table, (set(), set()))
        added |= event.added
        removed |= event.removed
    checked = []
    for table, (added, removed) in claims.items():
        named = added | removed
        present = rows.present(table, named)
        checked.append(
            CheckedRows(
                table,
                present,
                frozenset(named - present),
                len((added - removed) - present),
                len((removed - added) & present),
            )
        )
    return checked


class PendingRows:
    """Row hints waiting for the loop, merged per table and bounded (thread-safe).

    The MQTT thread adds, the loop takes everything at once: a burst costs one set per table,
    duplicates cost nothing, and a flood cannot grow memory past `max_ids`. Past it the hints
    are dropped and `take` says so: the loop then re-reads the tables in full, which is the
    truth the hints would only have pointed at."""

    def __init__(self, max_ids: int = 200_000) -> None:
        self._max_ids = max_ids
        self._lock = threading.Lock()
        self._tables: dict[str, tuple[set[str], set[str]]] = {}
        self._size = 0
        self._overflowed = False
        self.received = 0  # hints added since start

    def add(self, event: RowEvent) -> bool:
        """Queue `event`'s hints; True if none were waiting (the loop needs a wake-up)."""
        with self._lock:
            self.received += 1
            was_empty = not self._tables and not self._overflowed
            if self._overflowed:
                return was_empty
            if self._size + len(event.added) + len(event.removed) > self._max_ids:
                self._tables.clear()
                self._size = 0
                self._overflowed = True
                return was_empty
            added, removed = self._tables.setdefault(event.table, (set(), set()))
            before = len(added) + len(removed)
            added |= event.added
            removed |= event.removed
            self._size += len(added) + len(removed) - before
            return was_empty

    def take(self) -> tuple[list[RowEvent], bool]:
        """Everything waiting, one RowEvent per table, and whether hints were dropped."""
        with self._lock:
            events = [
                RowEvent(table, frozenset(added), frozenset(removed))
                for table, (added, removed) in self._tables.items()
            ]
            overflowed = self._overflowed
            self._tables.clear()
            self._size = 0
            self._overflowed = False
            return events, overflowed


def patch_rows_from_hints(
    rows: Rows,
    state: DaemonState,
    events: list[RowEvent],
    forged_log: ThrottledLog,
    unverified_log: ThrottledLog,
) -> set[str]:
    """Patch the rows of the kinds the events name with what the database says of the
    ids they name (`check_row_events`); the kinds whose rows changed. A hint the
    database contradicts is counted and logged (throttled: a flood of forged hints must not
    flood the log), never believed."""
    kinds_of: dict[str, list[str]] = {}
    for kind, policy in state.policies().items():
        kinds_of.setdefault(policy.table, []).append(kind)
    relevant = []
    for event in events:
        if event.table in kinds_of:
            relevant.append(event)
        else:  # ProtocolMeta, DeviceMeta, ...: not orchestrated
            metrics.EVENTS_IGNORED.labels("mqtt", "other-table").inc()
    if not relevant:
        return set()
    try:
        checked = check_row_events(rows, relevant)
    except Exception as e:  # the database cannot say: believe nothing, the tick re-reads
        named = sum(len(e.added) + len(e.removed) for e in relevant)
        metrics.EVENTS_REJECTED.labels("mqtt", "unverified").inc(named)
        unverified_log.warning("row events not verified", ids=named, error=str(e))
        return set()
    changed: set[str] = set()
    for c in checked:
        metrics.EVENTS_REJECTED.labels("mqtt", "not-in-table").inc(c.not_in_table)
        metrics.EVENTS_REJECTED.labels("mqtt", "still-in-table").inc(c.still_in_table)
        if c.not_in_table or c.still_in_table:
            forged_log.warning(
                "row event contradicts the database",
                table=c.table,
                not_in_table=c.not_in_table,
                still_in_table=c.still_in_table,
            )
        changed |= {k for k in kinds_of[c.table] if state.rows.patch(k, c.present, c.absent)}
    return changed
