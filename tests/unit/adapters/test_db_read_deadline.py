"""The database reads' client-side deadlines (reconciler/adapters/sql/deadline.py): one watcher
thread expires them in time order; a released read is never cut.

The connections here are sqlite3 ones (the deadline interrupts those); the PostgreSQL case,
a SIGSTOPped server, is in tests/integration/adapters/test_inventory.py."""

from __future__ import annotations

import sqlite3
import threading
import time

from reconciler.adapters.sql.deadline import ReadDeadline
from tests.support.polling import eventually


def _slow_query(conn: sqlite3.Connection) -> None:
    # A recursive CTE that counts far: seconds of work, interruptible.
    conn.execute(
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) "
        "SELECT count(*) FROM (SELECT x FROM c LIMIT 1000000000)"
    ).fetchall()


def test_a_read_past_its_deadline_is_interrupted() -> None:
    conn = sqlite3.connect(":memory:", check_same_thread=False)
    deadline = ReadDeadline(0.2)
    deadline.guard(conn)
    start = time.monotonic()
    try:
        _slow_query(conn)
        raised = False
    except sqlite3.OperationalError:
        raised = True
    finally:
        deadline.release()
    assert raised
    assert deadline.expired
    assert time.monotonic() - start < 5


def test_a_released_read_is_never_cut_and_not_marked_expired() -> None:
    conn = sqlite3.connect(":memory:", check_same_thread=False)
    deadline = ReadDeadline(0.05)
    deadline.guard(conn)
    deadline.unguard()
    deadline.release()
    # Due after it: once this one has expired, the watcher is past the released one's time.
    witness = ReadDeadline(0.1)
    eventually(lambda: witness.expired, timeout=5, what="a later deadline to expire")
    assert not deadline.expired
    assert conn.execute("SELECT 1").fetchall() == [(1,)]


def test_deadlines_expire_in_time_order_whatever_order_they_were_made_in() -> None:
    expired: list[str] = []
    lock = threading.Lock()

    class Recorded(ReadDeadline):
        def __init__(self, name: str, seconds: float) -> None:
            self.name = name
            super().__init__(seconds)

        def expire(self) -> None:
            super().expire()
            if self.expired:
                with lock:
                    expired.append(self.name)

    late = Recorded("late", 0.4)
    early = Recorded("early", 0.1)  # made after `late`, due before it: wakes the watcher
    released = Recorded("released", 0.05)
    released.release()
    eventually(lambda: "late" in expired, timeout=5, what="the last deadline to expire")
    assert expired == ["early", "late"]
    assert early.expired and late.expired and not released.expired
