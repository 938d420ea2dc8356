"""Client-side deadlines for database reads: one watcher thread for every read.

A server that does not answer at all (frozen, SIGSTOPped, a black-holed network) cannot
cancel a statement, and psycopg has no client-side deadline: once a read's time is up its
connection's socket is shut down, which ends the blocked read with "server closed the
connection" (SQLite: `interrupt()`).

Why one thread and not a `threading.Timer` per read: a row event's hint check is a read on
the event path, and starting a thread (and waiting, GIL and all, for it to say it started)
cost about as much as the query itself.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import os
import socket
import sqlite3
import threading
import time
from typing import Any

# The logger name is part of the log format operators filter on: it does not follow the
# module when code moves (docs/architecture.md "Logs").
log = logging.getLogger("reconciler.adapters.db_deadline")


class ReadDeadline:
    """Ends the read on the guarded connection once `seconds` have passed. `expired` says
    it did. `release()` when the read is over, whatever its outcome."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.expired = False
        self._lock = threading.Lock()
        self._conn: Any = None
        self._done = False
        _WATCHER.add(time.monotonic() + seconds, self)

    def guard(self, conn: Any) -> None:
        """Watch this DBAPI connection from now on (at once if the time is already up)."""
        with self._lock:
            self._conn = conn
            if self.expired:
                _abort(conn)

    def unguard(self) -> None:
        """Stop watching the connection before it goes back to the pool."""
        with self._lock:
            self._conn = None

    def release(self) -> None:
        """The read is over: nothing is dropped from now on."""
        with self._lock:
            self._done, self._conn = True, None

    def expire(self) -> None:
        with self._lock:
            if self._done:
                return
            self.expired = True
            if self._conn is not None:
                log.warning(
                    "database read: no answer after %.0f s: dropping the connection", self.seconds
                )
                _abort(self._conn)

    @property
    def done(self) -> bool:
        return self._done


class _Watcher:
    """A daemon thread, started on first use, that expires deadlines in time order. Released
    deadlines are skipped when they come up (a read rarely outlives its deadline, so the heap
    holds at most the reads of the last deadline's span)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, ReadDeadline]] = []
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None

    def add(self, at: float, deadline: ReadDeadline) -> None:
        with self._cond:
            while self._heap and self._heap[0][2].done:
                heapq.heappop(self._heap)
            heapq.heappush(self._heap, (at, next(self._seq), deadline))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="db-read-deadlines", daemon=True
                )
                self._thread.start()
            elif self._heap[0][2] is deadline:
                self._cond.notify()  # it is now the earliest: the thread waits too long

    def _run(self) -> None:
        while True:
            due: list[ReadDeadline] = []
            with self._cond:
                while self._heap and self._heap[0][2].done:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._cond.wait()
                    continue
                wait = self._heap[0][0] - time.monotonic()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                while self._heap and self._heap[0][0] <= time.monotonic():
                    due.append(heapq.heappop(self._heap)[2])
            for deadline in due:
                deadline.expire()


_WATCHER = _Watcher()


def _abort(conn: Any) -> None:
    """Make a read blocked on `conn` fail now, from another thread."""
    if isinstance(conn, sqlite3.Connection):
        conn.interrupt()  # documented as safe from another thread
        return
    try:
        fd = conn.pgconn.socket  # psycopg 3
    except Exception:  # closed already, or not psycopg: nothing is blocked on it
        return
    # shutdown() on a duplicate acts on the shared socket: the blocked poll() wakes up with
    # EOF, libpq reports "server closed the connection", and the fd stays psycopg's to close.
    dup = socket.socket(fileno=os.dup(fd))
    try:
        dup.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    finally:
        dup.close()
