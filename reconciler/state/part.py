"""What every part of the daemon's memory has in common: the lock it shares with the others.

REST threads, the MQTT thread and the loop thread all touch the memory, and the read side's
snapshot (`DaemonState.view`) must see every part at one instant; so the parts of one
`DaemonState` share its one re-entrant lock rather than keep one each, and a transition that
spans parts (a new policy, an operator's pin, recording a pass) holds it across all of them.
"""

from __future__ import annotations

import threading


class MemoryPart:
    """One stage's memory between passes; every public method holds the shared lock."""

    def __init__(self, lock: threading.RLock | None = None) -> None:
        # Alone (a test of one part), a part has a lock of its own.
        self._lock = lock if lock is not None else threading.RLock()
