"""What the churn's stream players share (bench/churn_publish.py, bench/zkfloor_write.py): the
schedule they read on stdin, keeping to it, and the rate they achieved. Standard library only:
each player is a process of its own whose start-up should not pull in the daemon."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence

Message = tuple[str, str, str]  # op, table, id


def read_schedule(lines: Iterable[str]) -> list[Message]:
    """One message a line, `<op> <table> <id>`; blank lines skipped."""
    out: list[Message] = []
    for raw in lines:
        if raw.strip():
            op, table, rid = raw.split()
            out.append((op, table, rid))
    return out


def wait_until_due(k: int, start: float, rate: float) -> float:
    """Sleep until message `k` is due (`start + k / rate`, monotonic; an absolute schedule, so
    a slow message does not push the rest back); its due time."""
    due = start + k / rate
    wait = due - time.monotonic()
    if wait > 0:
        time.sleep(wait)
    return due


def achieved(times: Sequence[float], start: float) -> tuple[float, float, float]:
    """(first, last, rate) of the times messages went out: rate (n - 1) / (last - first)."""
    first = times[0] if times else start
    last = times[-1] if times else start
    return first, last, (len(times) - 1) / (last - first) if len(times) > 1 else 0.0
