"""Loaded (PYTHONPATH) into the chaos daemon that runs under libfaketime (tests/chaos/clock.py).

libfaketime 0.9.10 (Debian bookworm) rewrites `clock_nanosleep(CLOCK_MONOTONIC,
TIMER_ABSTIME)` even with FAKETIME_DONT_FAKE_MONOTONIC and hands the kernel a negative time,
so Python 3.11's `time.sleep`, which sleeps that way, fails with EINVAL
(wolfcw/libfaketime#426). A lock's timed wait (`sem_clockwait` on the monotonic clock) is
left alone, so `time.sleep` waits on one instead: the same monotonic sleep.
"""

from __future__ import annotations

import threading
import time


def _sleep(seconds: float) -> None:
    if seconds < 0:
        raise ValueError("sleep length must be non-negative")
    threading.Event().wait(seconds)


time.sleep = _sleep
