"""When each pod started, as the daemon's own clocks can vouch for it.

A pod's start (`status.startTime`) is the apiserver's wall clock. The planner measures the new
worker's heartbeat grace and its silence from it against the daemon's wall clock
(`Observed.now`), and a rolling replacement waits until the new pod is heard "since it
started". A step of the daemon's wall clock (NTP, a VM resumed) would move every pod's age by
the step: after a step back every pod looks as if it started in the future (no silent worker
replaced, no rollout going on until the clock caught up, an hour for an hour's step); after a
step forward a pod in its grace period looks older than it is, and may be called silent
before its worker could be heard.

So at first sight of each pod incarnation (by uid) the daemon remembers its wall clock and
its monotonic clock, and moves the pod's start by as much as the wall clock has moved against
the monotonic one since (the step; the monotonic clock never steps). It also counts a pod as
started no later than that first sight (an apiserver clock ahead of the daemon's):

    started = min(startTime, wall first seen) + ((wall - mono) - (wall first - mono first))

Without a step this is `startTime` (a pod is seen after it starts); after a step either way it
is the pod's start read on the stepped clock, so its age, its grace and its silence are what
they were before the step. (The heartbeats themselves are dated on the monotonic clock,
reconciler/adapters/kafka/heartbeats.py.) Not thread-safe on its own: `PodMemory` (pods.py)
calls it under the state's lock. Memory follows the fleet: a pod no longer listed is
forgotten.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from reconciler.domain.model import Pod

# Below this the start is left as listed: grace and silence are judged in whole seconds, and
# the wall and monotonic clocks drift apart by far less between two passes without a step.
_SLACK_SECONDS = 0.5


@dataclass
class PodStarts:
    # kind -> uid -> (wall, mono) at first sight
    _first_seen: dict[str, dict[str, tuple[float, float]]] = field(default_factory=dict)

    def started(
        self, kind: str, pods: Mapping[str, Pod], wall: float, mono: float
    ) -> dict[str, Pod]:
        """`pods` (all of `kind`'s, as listed now) with their starts read as above."""
        known = self._first_seen.get(kind, {})
        seen: dict[str, tuple[float, float]] = {}
        out: dict[str, Pod] = {}
        for name, pod in pods.items():
            if pod.uid:  # (a create the watch has not shown yet has none)
                first_wall, first_mono = seen[pod.uid] = known.get(pod.uid, (wall, mono))
                if pod.started_at is not None:
                    step = (wall - mono) - (first_wall - first_mono)
                    started = min(pod.started_at, first_wall) + step
                    if abs(started - pod.started_at) >= _SLACK_SECONDS:
                        pod = replace(pod, started_at=started)  # (a copy per pod per pass, else)
            out[name] = pod
        self._first_seen[kind] = seen
        return out
