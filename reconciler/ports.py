"""The narrow interfaces one pass needs, and the one error vocabulary every adapter speaks.

The pipeline (`reconciler.pipeline`) imports these, never an adapter: ZooKeeper, SQL,
Kubernetes and Kafka hide behind them (`reconciler.adapters.*` implement them), and the
in-memory fakes in `tests/unit/fakes.py` implement them for millisecond tests.

Three errors, three reactions (controller-runtime's "requeue with backoff", "requeue",
"do not requeue"):

- `SourceUnavailable`: the server could not be reached or answered with a transient error.
  Back off; act on nothing that depends on what it would have said ("blind").
- `NotYet`: an expected, temporary refusal (a pod name still held by the pod being deleted).
  Retry on the next pass, without backoff and without reporting it as a failure.
- `Terminal`: a bad request that no retry fixes (403, 422, a malformed object). Report it
  and do not retry it until the inputs change.

Any other exception out of an adapter is a bug or an unforeseen fault: it is reported and
retried with backoff, like `SourceUnavailable`, but logged as a failure.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from reconciler.model import (
    Assignment,
    Heartbeats,
    Instance,
    NodeCapacity,
    NodeVersions,
    Pod,
    PodUsage,
)
from reconciler.pins import Pin
from reconciler.slowstart import SlowStartResult

if TYPE_CHECKING:
    from reconciler.autoscale import Autoscaler


class SourceUnavailable(Exception):
    """The server behind an adapter could not be reached or answered with a transient error."""


class NotYet(Exception):
    """Expected and temporary: try again on the next pass (no backoff, not a failure)."""


class NotLeader(NotYet):
    """This daemon does not lead (or cannot prove it does): the write was not made. The
    leader makes it; a daemon that wins the election makes it on its next pass."""


class Conflict(SourceUnavailable):
    """A compare-and-set write found the data changed since it was read (another writer):
    nothing was written. Retried like `SourceUnavailable`, with backoff, after a re-read
    (controller-runtime requeues a 409 Conflict with rate-limited backoff and reads again)."""


class Terminal(Exception):
    """A request the server refused for good (4xx other than 404/409/429): do not retry."""


class AssignmentStore(Protocol):
    """Where the assignment lives (ZooKeeper, SPEC layout): the workers read it from there."""

    def read(self, kind: str) -> Assignment: ...
    def write_instance(
        self, kind: str, instance: Instance, *, create: bool, count_only: bool = False
    ) -> Instance:
        """Compare-and-set on `instance.versions` (None: create, or not read: unconditional);
        `Conflict` if another writer changed it. Returns it with its new versions.
        `count_only`: its ids did not change; only the count needs sending."""
        ...

    def delete_instance(
        self, kind: str, instance_id: int, *, versions: NodeVersions | None = None
    ) -> None: ...


class Rows(Protocol):
    """The inventory: which resource ids exist in a table."""

    def ids(self, table: str) -> AbstractSet[str]: ...
    def adopt(self, table: str, ids: AbstractSet[str]) -> None:
        """Keep `ids`, equal to what `ids(table)` last answered, in place of that answer: the
        daemon's own copy (sharing the strings of earlier reads, idsets.share), so a cache
        of the rows holds no second copy of a million ids."""
        ...

    def present(self, table: str, ids: Iterable[str]) -> frozenset[str]:
        """Which of `ids` the table holds now (a batched lookup, for event hints)."""
        ...


class Pods(Protocol):
    """The managed pods of each kind, as the apiserver holds them now."""

    def list_pods(self, kind: str) -> dict[str, Pod]: ...
    def create_pods(self, kind: str, instance_ids: Sequence[int]) -> SlowStartResult[Pod]: ...
    def delete_pod(self, kind: str, name: str, *, uid: str | None = None) -> None: ...
    def adopt_pod(
        self, kind: str, name: str, instance_id: int, *, uid: str | None = None
    ) -> None: ...


class PinStore(Protocol):
    """Operators' pins of instance counts (`reconciler scale`/`stop`), kept in ZooKeeper so
    they outlive this daemon: every kind's pin, set one, remove one."""

    def read(self) -> dict[str, Pin]: ...
    def write(self, kind: str, pin: Pin) -> None: ...
    def delete(self, kind: str) -> None: ...


class PodCache(Protocol):
    """A watch's current view of a kind's pods (None until its first list)."""

    def pods(self, kind: str) -> dict[str, Pod] | None: ...


class HeartbeatSource(Protocol):
    """The last heartbeat of each instance (Kafka) and whether the source is connected."""

    def snapshot(self, kind: str) -> Heartbeats: ...
    def forget(self, kind: str, instance_id: int) -> None: ...


class PodMetricsSource(Protocol):
    """Pod CPU/memory (metrics.k8s.io) and the nodes' room, for autoscaling."""

    def pod_usage(self, kind: str) -> dict[str, PodUsage]: ...
    def node_capacity(self) -> list[NodeCapacity]: ...


class PodEvents(Protocol):
    """Kubernetes Events about the pods the daemon acts on (`kubectl describe pod`)."""

    def pod_event(
        self,
        kind: str,
        namespace: str,
        pod_name: str,
        action: str,
        reason: str,
        note: str,
        *,
        uid: str | None = None,
        event_type: str | None = None,
    ) -> None: ...


class Leadership(Protocol):
    """Leader election: only the leader writes; standbys observe and keep warm."""

    identity: str
    transitions: int

    @property
    def is_leader(self) -> bool: ...
    def may_act(self) -> bool: ...
    def leader(self) -> str | None: ...


@dataclass
class Ports:
    """Everything a pass reaches beyond its own state: the ports, the autoscaler (it reads
    pod metrics through its own port) and the clocks (time is an input too)."""

    store: AssignmentStore
    rows: Rows
    pods: Pods
    pod_cache: PodCache | None = None
    heartbeats: HeartbeatSource | None = None
    autoscaler: Autoscaler | None = None
    leadership: Leadership | None = None  # None: no election, this daemon always writes
    events: PodEvents | None = None  # Kubernetes Events about the pods acted on
    pins: PinStore | None = None  # operators' pinned instance counts (None: no pins)
    # Seconds a full pass may trust the pod watch before listing pods afresh (0: always
    # list; RECONCILER_FULL_READ_SECONDS). The ZooKeeper and row caches have their own.
    full_read_seconds: float = 0.0
    wall: Callable[[], float] = time.time  # Unix seconds: heartbeats, pod start times
    mono: Callable[[], float] = time.monotonic  # intervals: backoff, expectations
