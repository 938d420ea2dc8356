"""What one pass reaches beyond its own state: the ports (`reconciler.reconcile.ports`), the
autoscaler and the clocks, bundled once by the wiring (`reconciler.wiring`).

Apart from the ports themselves so that adapters, which implement the ports, never see the
policy types the autoscaler speaks.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Any, Protocol

from reconciler.domain.model import Assignment, Moment, Pod
from reconciler.policy.schema import KindPolicy
from reconciler.reconcile.ports import (
    AssignmentStore,
    HeartbeatSource,
    Leadership,
    PinStore,
    PodCache,
    PodEvents,
    Pods,
    Rows,
)


class Autoscaling(Protocol):
    """The autoscaler as a pass uses it (`reconciler.reconcile.autoscale.Autoscaler`)."""

    def update(
        self,
        kind: str,
        policy: KindPolicy,
        rows: AbstractSet[str] | None,
        assignment: Assignment | None,
        pods: Mapping[str, Pod] | None,
        at: Moment,
        targets: dict[str, int],
    ) -> None: ...
    def status(self, kind: str, policy: KindPolicy) -> dict[str, Any] | None: ...


class PodAdmission(Protocol):
    """The namespace's ResourceQuota as growth uses it
    (`reconciler.reconcile.admission.Admission`): read on full passes, a limit per kind."""

    def update(
        self, kind: str, policy: KindPolicy, pods: Mapping[str, Pod] | None, mono: float
    ) -> None: ...
    def pod_limit(self, kind: str) -> int | None: ...


# The most instance writes a pass sends together (Ports.store_writes_in_flight).
MAX_WRITES_IN_FLIGHT = 8


@dataclass
class Ports:
    """Everything a pass reaches beyond its own state: the ports, the autoscaler (it reads
    pod metrics through its own port) and the clocks (time is an input too)."""

    store: AssignmentStore
    rows: Rows
    pods: Pods
    pod_cache: PodCache | None = None
    heartbeats: HeartbeatSource | None = None
    autoscaler: Autoscaling | None = None
    admission: PodAdmission | None = None  # None: no quota read, growth unchecked by it
    leadership: Leadership | None = None  # None: no election, this daemon always writes
    # RECONCILER_OBSERVE_ONLY: every pass plans and applies nothing, whoever leads (no election)
    observe_only: bool = False
    events: PodEvents | None = None  # Kubernetes Events about the pods acted on
    pins: PinStore | None = None  # operators' pinned instance counts (None: no pins)
    # Seconds a full pass may trust the pod watch before listing pods afresh (0: always
    # list; RECONCILER_FULL_READ_SECONDS). The ZooKeeper and row caches have their own.
    full_read_seconds: float = 0.0
    # Instance writes a pass may have in flight at once (1: one after another; at most
    # MAX_WRITES_IN_FLIGHT); only those that need no other to land first go together.
    store_writes_in_flight: int = 1
    wall: Callable[[], float] = time.time  # Unix seconds: heartbeats, pod start times
    mono: Callable[[], float] = time.monotonic  # intervals: backoff, expectations
