"""Provisioning that talks: say what a step costs before it starts, and keep saying that it is
still working while it does, so a quiet 20-minute Go build never looks like a hang.

    step("kube", "building kube-apiserver from Go modules", cost="~20 min on 2 cores, cached")
    with heartbeat("building kube-apiserver", log_path):
        ...   # a line "rig: ... still building kube-apiserver (1m 0s; last log line: ...)"
              # every HEARTBEAT_SECONDS while the block runs
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

# At least one line a minute while a long step works (RIG_HEARTBEAT_SECONDS overrides).
HEARTBEAT_SECONDS = float(os.environ.get("RIG_HEARTBEAT_SECONDS", "30"))


def say(line: str, out: TextIO | None = None) -> None:
    print(f"rig: {line}", file=out or sys.stdout, flush=True)


def step(server: str, what: str, *, cost: str) -> None:
    """Announce a step before it starts, with what it costs: "rig: kafka: fetching ... (~8 s)"."""
    say(f"{server}: {what} ({cost})")


def elapsed(seconds: float) -> str:
    """6.2 -> "6s"; 75 -> "1m 15s"; 3725 -> "1h 2m 5s"."""
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60}s"
    return f"{s // 3600}h {s % 3600 // 60}m {s % 60}s"


def last_line(log_path: Path | None, width: int = 100) -> str:
    """The log's last non-empty line, shortened: what the step is doing now."""
    if log_path is None:
        return ""
    try:
        with open(log_path, "rb") as fh:
            fh.seek(0, 2)
            fh.seek(max(0, fh.tell() - 4096))
            tail = fh.read().decode("utf-8", "replace")
    except OSError:
        return ""
    lines = [ln.strip() for ln in tail.splitlines() if ln.strip()]
    if not lines:
        return ""
    line = lines[-1]
    return line if len(line) <= width else line[: width - 3] + "..."


@contextlib.contextmanager
def heartbeat(
    what: str,
    log_path: Path | None = None,
    *,
    interval: float | None = None,
    out: TextIO | None = None,
) -> Iterator[None]:
    """While the block runs, print "rig: still <what> (<elapsed>; log: <last line>)" every
    `interval` seconds (default HEARTBEAT_SECONDS); nothing once it has ended."""
    every = HEARTBEAT_SECONDS if interval is None else interval
    done = threading.Event()
    t0 = time.monotonic()

    def beat() -> None:
        while not done.wait(every):
            now = last_line(log_path)
            where = f"; log {log_path}: {now}" if now else (f"; log {log_path}" if log_path else "")
            say(f"still {what} ({elapsed(time.monotonic() - t0)}{where})", out)

    thread = threading.Thread(target=beat, name="rig-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
