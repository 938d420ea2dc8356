"""Waiting in tests: the one place that polls until something holds.

Everything here is built on `eventually`:

- `eventually(check)`: call `check` until it returns something truthy; return that value.
- `seconds_until(check)`: the same, returning how many seconds it took (for tests that print or
  bound a latency).
- `ticking(check, tick, every=...)`: a check that also nudges the system while it fails (resend
  a heartbeat until it is seen).
- `wait_for_log(source, find)` / `wait_for_line(source, pattern)`: wait for something in a
  child process's log, giving up at once if the process exits, with the log's tail in the
  failure.

A check may raise instead of returning a falsy value: the exception counts as "not yet", and
the last one is what the test reports at the deadline. So a check can `assert` with a message
that describes the state it saw, and a transient error (a znode deleted while a check reads the
tree) does not end the wait. A check that knows the condition can no longer come true raises
`GiveUp`, which ends the wait at once.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

LOG_TAIL = 4000  # characters of a log quoted in a failure


class GiveUp(AssertionError):
    """Raised by a check to stop waiting now: `eventually` re-raises it without retrying."""


def eventually(
    check: Callable[[], T | None], timeout: float = 20.0, interval: float = 0.1, what: str = ""
) -> T:
    """Call `check()` until it returns a truthy value, and return that value.

    `check` is called at once, then every `interval` seconds, and a last time at the deadline
    (`timeout` seconds after the call), so it runs at least once even with timeout=0. A check
    that blocks by itself (a socket read with a timeout) can use interval=0.

    An exception from `check` counts as a failed attempt; the last one is remembered. At the
    deadline, that exception is re-raised (with a note saying that the wait timed out), else an
    AssertionError naming `what` (or the check's name) and the timeout is raised. `GiveUp` from
    `check` is re-raised at once.
    """
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while True:
        try:
            value = check()
        except GiveUp:
            raise
        except Exception as e:  # not yet: remembered for the report at the deadline
            last = e
        else:
            if value:
                return value
        left = deadline - time.monotonic()
        if left <= 0:
            break
        time.sleep(min(interval, left))
    waiting_for = what or getattr(check, "__qualname__", repr(check))
    if last is not None:
        last.add_note(f"(eventually: still failing after {timeout}s waiting for {waiting_for})")
        raise last
    raise AssertionError(f"timed out after {timeout}s waiting for {waiting_for}")


def seconds_until(
    check: Callable[[], Any], timeout: float = 20.0, interval: float = 0.1, what: str = ""
) -> float:
    """`eventually(check, ...)`, returning the seconds it took instead of check's value."""
    start = time.monotonic()
    eventually(check, timeout=timeout, interval=interval, what=what)
    return time.monotonic() - start


def ticking(check: Callable[[], T], tick: Callable[[], object], *, every: float) -> Callable[[], T]:
    """`check`, calling `tick()` after a failed attempt at most once per `every` seconds.

    For conditions that need a nudge to come true, e.g. heartbeats resent until one is seen:
    `eventually(ticking(lambda: seen(1), lambda: producer.beat(1), every=0.2))`. The first
    failed attempt ticks at once. An exception from `tick` is a failed attempt like any other.
    """
    next_tick = float("-inf")

    def checked() -> T:
        nonlocal next_tick
        value = check()
        if not value:
            now = time.monotonic()
            if now >= next_tick:
                next_tick = now + every
                tick()
        return value

    return checked


def wait_for_log(
    source: Path | Callable[[], str],
    find: Callable[[str], T | None],
    timeout: float,
    *,
    proc: subprocess.Popen[Any] | None = None,
    interval: float = 0.5,
    what: str = "",
) -> T:
    """Wait until `find(text)` is truthy for a log's text so far, and return what it found.

    `source` is the log file (re-read at every attempt, undecodable bytes replaced) or a
    function returning the text. `proc` is the process writing it: when it has exited and the
    text has nothing to find, the wait ends at once (`GiveUp`). Either failure quotes the log's
    last LOG_TAIL characters.
    """
    read = source if callable(source) else lambda: source.read_text(errors="replace")
    waiting_for = what or "match"

    def check() -> T:
        text = read()
        found = find(text)
        if found:
            return found
        if proc is not None and proc.poll() is not None:
            raise GiveUp(
                f"no {waiting_for}: the process exited with {proc.returncode}; log:\n"
                + text[-LOG_TAIL:]
            )
        raise AssertionError(f"no {waiting_for} within {timeout}s; log:\n" + text[-LOG_TAIL:])

    return eventually(check, timeout=timeout, interval=interval, what=waiting_for)


def wait_for_line(
    source: Path | Callable[[], str],
    pattern: str,
    timeout: float,
    *,
    proc: subprocess.Popen[Any] | None = None,
    interval: float = 0.5,
) -> re.Match[str]:
    """Wait until the regex `pattern` matches in a log (`re.search` over all of the text so
    far); return the match. `source`, `proc` and `interval` as for `wait_for_log`."""
    return wait_for_log(
        source,
        lambda text: re.search(pattern, text),
        timeout,
        proc=proc,
        interval=interval,
        what=repr(pattern),
    )
