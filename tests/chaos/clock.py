"""The chaos daemon's own wall clock, stepped as NTP would step it: libfaketime (Debian
`libfaketime`, rig/provision.py) preloaded into the daemon's process reads a relative offset
("+600", "-300") from a file of the world's, again at most every second or two
(FAKETIME_CACHE_DURATION=1), and moves the wall clock only (FAKETIME_DONT_FAKE_MONOTONIC=1):
the monotonic clock goes on, as after a real step. Only the main daemon runs under it; the
rig's servers, the checker, the churn and the workers keep the machine's clock.

The daemon's log stamps and `lastPass.at` are on its stepped clock; `true_time` reads them
back on the machine's, from the offsets written so far and when the stamp was seen.
"""

from __future__ import annotations

import glob
import time
from pathlib import Path

SITE = Path(__file__).parent / "faketime_site"  # works round a libfaketime 0.9.10 bug
# Debian's path (multiarch), then a source build's.
CANDIDATES = ("/usr/lib/*/faketime/libfaketime.so.1", "/usr/local/lib/faketime/libfaketime.so.1")


def find_libfaketime() -> Path | None:
    for pattern in CANDIDATES:
        for found in sorted(glob.glob(pattern)):
            return Path(found)
    return None


class DaemonClock:
    """The offset file under `work` and the steps written to it (machine time, offset)."""

    def __init__(self, work: Path) -> None:
        self.library = find_libfaketime()
        self.file = work / "faketime"
        self.steps: list[tuple[float, int]] = [(0.0, 0)]
        self._write(0)

    @property
    def available(self) -> bool:
        return self.library is not None

    @property
    def offset(self) -> int:
        return self.steps[-1][1]

    def env(self) -> dict[str, str]:
        """The daemon's environment for its clock to follow the file (empty: no libfaketime)."""
        if self.library is None:
            return {}
        return {
            "LD_PRELOAD": str(self.library),
            "FAKETIME_TIMESTAMP_FILE": str(self.file),
            "FAKETIME_DONT_FAKE_MONOTONIC": "1",
            "FAKETIME_CACHE_DURATION": "1",
            "PYTHONPATH": str(SITE),
        }

    def step(self, seconds: int) -> int:
        """Step the daemon's wall clock by `seconds` (on top of the steps before); the new
        offset."""
        offset = self.offset + seconds
        self._write(offset)
        self.steps.append((time.time(), offset))
        return offset

    def _write(self, offset: int) -> None:
        tmp = self.file.with_suffix(".tmp")
        tmp.write_text(f"{offset:+d}\n")
        tmp.replace(self.file)

    def true_time(self, stamp: float, near: float) -> float:
        """The machine's time of a daemon's `stamp` seen at `near` (machine time): of the
        offsets it may have been made under, the reading closest to when it was seen. Steps
        are minutes, pipes and HTTP milliseconds: no two readings are close."""
        return min((stamp - offset for _, offset in self.steps), key=lambda t: abs(t - near))
