"""Failpoints: a test hook that makes the daemon misbehave on purpose at a named point, after
etcd's gofail and FreeBSD's fail points. The chaos run (tests/chaos/timefaults.py) wedges a
pass with it, to see `/healthz` and the supervisor do their part on a real process.

Off unless the environment variable RECONCILER_FAILPOINTS_FILE names a file: in production
the loop holds no `Failpoints` at all, and pays one `is not None` check a batch. The file
holds one `<point>=<action>` a line; it is read again at a hit when its mtime has changed, so
a test arms and disarms a point by rewriting it. Actions: `sleep(<seconds>)` (the hit blocks
its thread that long) and `off`. The one point so far is `pass`: the loop thread, once a
batch of wake-ups is taken, before the pass (liveness.py counts it as working).

Not a setting: a test hook documented in docs/development.md, like the rig's variables.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from reconciler.telemetry.logs import log

ENV = "RECONCILER_FAILPOINTS_FILE"
_LINE = re.compile(r"^\s*([a-z_]+)\s*=\s*(?:sleep\(\s*([0-9.]+)\s*\)|(off))\s*$")


def parse(text: str) -> tuple[dict[str, float], list[str]]:
    """The armed points (point -> seconds to sleep) and the lines that made no sense."""
    armed: dict[str, float] = {}
    bad: list[str] = []
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = _LINE.match(line)
        if match is None:
            bad.append(line.strip())
        elif match.group(3):
            armed.pop(match.group(1), None)
        else:
            armed[match.group(1)] = float(match.group(2))
    return armed, bad


@dataclass
class Failpoints:
    path: Path
    sleep: Callable[[float], None] = time.sleep
    _stamp: int | None = None  # the file's mtime (ns) when last read; None: not read yet
    _armed: dict[str, float] = field(default_factory=dict)

    def hit(self, point: str) -> None:
        """Run `point`'s action, if the file arms it."""
        self._reread()
        seconds = self._armed.get(point)
        if seconds is not None:
            log.warning("failpoint hit", failpoint=point, action=f"sleep({seconds:g})")
            self.sleep(seconds)

    def _reread(self) -> None:
        try:
            stamp = self.path.stat().st_mtime_ns
        except OSError:
            self._stamp, self._armed = None, {}  # no file: nothing armed
            return
        if stamp == self._stamp:
            return
        try:
            text = self.path.read_text()
        except OSError:
            return  # replaced as we read: the next hit reads it again
        self._stamp = stamp
        self._armed, bad = parse(text)
        if bad:
            log.warning("failpoint lines ignored", file=str(self.path), lines=bad)


def from_env(environ: Mapping[str, str] = os.environ) -> Failpoints | None:
    """The failpoints the environment names, or None (production)."""
    path = environ.get(ENV)
    return Failpoints(Path(path)) if path else None
