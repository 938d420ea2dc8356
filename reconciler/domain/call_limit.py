"""How long a call to a server may take now: its own timeout, or less when the pass making it
has less of its budget left.

Every read has a deadline of its own (RECONCILER_DATABASE_TIMEOUT, the ZooKeeper call timeout,
the apiserver's request timeout), but a pass reads kind after kind: with every server frozen,
reads that each spend their own deadline in full add up to many times the pass budget. So
while a pass reads (reconciler/reconcile/pipeline.py), it says how much of its budget is left
(`reads_within`), and each adapter bounds its next call by it (`bounded`). Outside a pass's
reads (its writes, the row events' hint checks, the CLI) a call keeps its own timeout.

A context variable rather than an argument of every port: the ports' signatures stay what
the fakes and the caching layers (the rows' fingerprint cache, the ZooKeeper watch cache)
implement, and the bound reaches the call at the bottom of them unchanged. The loop runs a
pass on one thread, so the bound never leaks into another thread's calls.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

# The least a call is given however little of the budget is left: a healthy server answers a
# read in this time, so a pass near its deadline does not report a sound source unavailable.
# It is also the most a bounded call can run past the budget (plus a connect's own limit).
MIN_CALL_SECONDS = 1.0

_SECONDS_LEFT: ContextVar[Callable[[], float] | None] = ContextVar("seconds_left", default=None)


@contextmanager
def reads_within(seconds_left: Callable[[], float]) -> Iterator[None]:
    """Bound every call made inside by `seconds_left()` (asked at each call)."""
    token = _SECONDS_LEFT.set(seconds_left)
    try:
        yield
    finally:
        _SECONDS_LEFT.reset(token)


def bounded(seconds: float) -> float:
    """`seconds` (a call's own timeout), or what the pass has left if that is less, but never
    under MIN_CALL_SECONDS (nor over `seconds`)."""
    left = _SECONDS_LEFT.get()
    if left is None:
        return seconds
    return min(seconds, max(left(), MIN_CALL_SECONDS))
