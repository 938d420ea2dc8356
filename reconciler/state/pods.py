"""What the daemon remembers of each kind's pods between passes.

Apply notes the creates and deletes it made (expectations.py, until the pod watch shows them);
observe reads the watch's cache through them, notes when it last listed the pods afresh (a
fresh list is the truth: nothing left to expect) and bounds each pod's start by the daemon's
own clocks (pod_starts.py).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping

from reconciler.domain.model import Pod
from reconciler.state.expectations import PodExpectations
from reconciler.state.part import MemoryPart
from reconciler.state.pod_starts import PodStarts


class PodMemory(MemoryPart):
    def __init__(self, lock: threading.RLock | None = None) -> None:
        super().__init__(lock)
        self._expected = PodExpectations()
        self._starts = PodStarts()
        self._listed_at: dict[str, float] = {}  # kind -> when its pods were last listed (mono)

    # --- written by apply ------------------------------------------------------------------

    def created(self, kind: str, name: str, instance_id: int, now: float, uid: str = "") -> None:
        """We created incarnation `uid` of pod `name`: until the watch shows it (or shows it
        deleted), count it as Pending."""
        with self._lock:
            self._expected.created(kind, name, instance_id, now, uid)

    def deleted(self, kind: str, name: str, uid: str, now: float) -> None:
        """We deleted incarnation `uid` of pod `name`: until the watch shows it go, count it
        as terminating."""
        with self._lock:
            self._expected.deleted(kind, name, uid, now)

    # --- written and read by observe -------------------------------------------------------

    def expected(
        self,
        kind: str,
        cached: Mapping[str, Pod],
        now: float,
        gone: Mapping[str, str] | None = None,
    ) -> dict[str, Pod]:
        """A watch cache's pods with our own changes it has not shown yet (expectations.py);
        `gone`: the uid of each name's last incarnation the watch saw deleted."""
        with self._lock:
            return self._expected.view(kind, cached, now, gone)

    def listed_at(self, kind: str) -> float | None:
        """When `kind`'s pods were last listed afresh (monotonic), or None: never."""
        with self._lock:
            return self._listed_at.get(kind)

    def listed(self, kind: str, now: float) -> None:
        """A fresh list from the apiserver is the truth: it shows our own changes already."""
        with self._lock:
            self._expected.forget(kind)
            self._listed_at[kind] = now

    def started(
        self, kind: str, pods: Mapping[str, Pod], wall: float, mono: float
    ) -> dict[str, Pod]:
        """`pods` with their starts as the daemon's own clocks vouch for them (pod_starts.py)."""
        with self._lock:
            return self._starts.started(kind, pods, wall, mono)
