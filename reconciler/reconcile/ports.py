"""The narrow interfaces one pass needs.

The pipeline (`reconciler.reconcile.pipeline`) imports these, never an adapter: ZooKeeper, SQL,
Kubernetes and Kafka hide behind them (`reconciler.adapters.*` implement them), and the
in-memory fakes in `tests/support/fakes.py` implement them for millisecond tests. Every adapter
raises the error vocabulary of `reconciler.domain.errors`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from typing import Protocol

from reconciler.domain.ids import SortedIds
from reconciler.domain.model import (
    Assignment,
    Heartbeats,
    Instance,
    NodeCapacity,
    NodeVersions,
    Pod,
    PodUsage,
)
from reconciler.domain.pins import Pin
from reconciler.domain.slowstart import SlowStartResult


class AssignmentStore(Protocol):
    """Where the assignment lives (ZooKeeper, docs/contracts.md "ZooKeeper layout"): the
    workers read it from there."""

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

    def adopt(self, kind: str, ids: Mapping[int, SortedIds], rows: tuple[str, ...]) -> None:
        """Keep `ids[i]`, the very set instance `i` was last read with (its version) made of
        other string objects (the rows': domain/id_strings.py), in place of that set, so a
        cache of the assignment holds no second copy of its ids. An instance read or
        written anew since keeps what it has. `rows`: the sorted strings of the kind's rows,
        to make the instances read from now on of (a store that keeps nothing ignores it)."""
        ...


class Rows(Protocol):
    """The inventory: which resource ids exist in a table."""

    def ids(self, table: str) -> AbstractSet[str]: ...
    def adopt(self, table: str, ids: AbstractSet[str]) -> None:
        """Keep `ids`, equal to what `ids(table)` last answered, in place of that answer: the
        daemon's own copy (sharing the strings of earlier reads, ids.share), so a cache
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
    def gone(self, kind: str) -> dict[str, str]:
        """Name -> uid of the last incarnation of each pod the watch saw deleted."""
        ...


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
    def leader_url(self) -> str | None:
        """Where the leader's REST API is (None: unknown, or it publishes none)."""
        ...
