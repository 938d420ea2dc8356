"""When each pod started, as the daemon's own clocks can vouch for it.

A pod's start (`status.startTime`) is the apiserver's wall clock. The planner measures the new
worker's heartbeat grace and its silence from it against the daemon's wall clock
(`Observed.now`), and a rolling replacement waits until the new pod is heard "since it
started". After the daemon's wall clock steps back (NTP), every pod looks as if it started in
the future: no silent worker would be replaced and no rollout would go on until the clock
caught up, an hour for an hour's step.

So the daemon also remembers when it first saw each pod incarnation (by uid), on the monotonic
clock, and a pod counts as started no later than that:

    started = min(startTime, wall now - (monotonic now - first seen))

Without a step this is `startTime` (a pod is seen after it starts); after a step back it is
when the daemon first saw the pod, on the new wall clock, so the grace and the silence run on.
(A step forward still makes pods look older: only a step back is corrected. The heartbeats
themselves are dated on the monotonic clock, reconciler/adapters/kafka/heartbeats.py.) Not
thread-safe on its own: `PodMemory` (pods.py) calls it under the state's lock. Memory follows
the fleet: a pod no longer listed is forgotten.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from reconciler.domain.model import Pod


@dataclass
class PodStarts:
    _first_seen: dict[str, dict[str, float]] = field(default_factory=dict)  # kind -> uid -> mono

    def started(
        self, kind: str, pods: Mapping[str, Pod], wall: float, mono: float
    ) -> dict[str, Pod]:
        """`pods` (all of `kind`'s, as listed now) with their starts bounded as above."""
        known = self._first_seen.get(kind, {})
        seen: dict[str, float] = {}
        out: dict[str, Pod] = {}
        for name, pod in pods.items():
            if pod.uid:  # (a create the watch has not shown yet has none)
                first = seen[pod.uid] = known.get(pod.uid, mono)
                if pod.started_at is not None:
                    pod = replace(pod, started_at=min(pod.started_at, wall - (mono - first)))
            out[name] = pod
        self._first_seen[kind] = seen
        return out
