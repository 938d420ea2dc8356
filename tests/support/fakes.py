"""In-memory FAKES of the pipeline's ports (reconciler.reconcile.ports), for millisecond unit tests
of
the pipeline and the scheduler. They are fakes, not the real servers: the adapters are tested
against ZooKeeper, PostgreSQL and the apiserver in tests/integration.

Each fake can be switched "down" (raises SourceUnavailable) and can be told to refuse
particular calls with any exception, and counts the writes it was asked to make.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field, replace
from pathlib import Path

import yaml

from reconciler.domain.errors import Conflict, SourceUnavailable, Terminal
from reconciler.domain.ids import SortedIds, same_ids
from reconciler.domain.model import Assignment, Heartbeats, Instance, NodeVersions, Pod, pod_name
from reconciler.domain.pins import Pin
from reconciler.domain.slowstart import SlowStartResult

REPO = Path(__file__).resolve().parents[2]
NAMES = {"Thing": "iota-dac", "Rule": "iota-rules-engine"}


@dataclass
class FakeStore:
    """ZooKeeper's assignment, in a dict, with ZooKeeper's compare-and-set: every instance
    has a version (all its nodes move together here) that a read hands out and a write
    must match (else `Conflict`, nothing written)."""

    data: dict[str, Assignment] = field(default_factory=dict)
    down: bool = False
    writes: int = 0
    refuse: dict[str, Exception] = field(default_factory=dict)  # kind -> raised on write
    # (kind, instance id) -> raised by the writes and deletes of that instance only
    refuse_instance: dict[tuple[str, int], Exception] = field(default_factory=dict)
    # called after every write or delete that went through (e.g. to check an invariant)
    after_write: Callable[[FakeStore], None] | None = None
    _versions: dict[tuple[str, int], int] = field(default_factory=dict)

    def _check(self) -> None:
        if self.down:
            raise SourceUnavailable("fake ZooKeeper is down")

    def _version(self, kind: str, instance_id: int) -> NodeVersions:
        v = self._versions.get((kind, instance_id), 0)
        return NodeVersions(v, v, v)

    def read(self, kind: str) -> Assignment:
        self._check()
        return {
            i: replace(inst, versions=self._version(kind, i))
            for i, inst in self.data.get(kind, {}).items()
        }

    def adopt(self, kind: str, ids: Mapping[int, SortedIds], rows: tuple[str, ...]) -> None:
        """Keep each set in place of the stored one of its version, as CachedZkStore does."""
        held = self.data.get(kind, {})
        for i, shared in ids.items():
            if i in held and same_ids(held[i].ids, shared):
                held[i] = replace(held[i], ids=shared)

    def write_instance(
        self, kind: str, instance: Instance, *, create: bool, count_only: bool = False
    ) -> Instance:
        self._check()
        self.writes += 1
        if kind in self.refuse:
            raise self.refuse[kind]
        key = (kind, instance.instance_id)
        if key in self.refuse_instance:
            raise self.refuse_instance[key]
        now = self.data.get(kind, {}).get(instance.instance_id)
        expected = instance.versions
        if now is not None and (
            (expected is None and create and now != instance)
            or (expected is not None and expected != self._version(*key))
        ):
            raise Conflict(f"fake ZooKeeper: {kind}/{instance.instance_id} changed since read")
        if now is None and expected is not None:
            raise Conflict(f"fake ZooKeeper: {kind}/{instance.instance_id} deleted since read")
        self._versions[key] = self._versions.get(key, -1) + 1 if now is not None else 0
        stored = replace(instance, versions=self._version(*key))
        self.data.setdefault(kind, {})[instance.instance_id] = stored
        if self.after_write is not None:
            self.after_write(self)
        return stored

    def delete_instance(
        self, kind: str, instance_id: int, *, versions: NodeVersions | None = None
    ) -> None:
        self._check()
        self.writes += 1
        if (kind, instance_id) in self.refuse_instance:
            raise self.refuse_instance[(kind, instance_id)]
        if instance_id not in self.data.get(kind, {}):
            return
        if versions is not None and versions != self._version(kind, instance_id):
            raise Conflict(f"fake ZooKeeper: {kind}/{instance_id} changed since read")
        self.data[kind].pop(instance_id)
        self._versions.pop((kind, instance_id), None)
        if self.after_write is not None:
            self.after_write(self)


@dataclass
class FakeRows:
    """The database's tables, as sets of ids. A table not in `tables` does not exist."""

    tables: dict[str, set[str]] = field(default_factory=dict)
    down: bool = False
    reads: int = 0
    lookups: int = 0
    during_read: Callable[[], None] | None = None  # runs in ids(), e.g. to make it slow

    def ids(self, table: str) -> SortedIds:
        self.reads += 1
        if self.during_read is not None:
            self.during_read()
        if self.down:
            raise SourceUnavailable("fake database is down")
        if table not in self.tables:
            raise Terminal(f'table "{table}" does not exist')
        return SortedIds(self.tables[table])  # as the real Inventory answers

    def adopt(self, table: str, ids: AbstractSet[str]) -> None:
        """Nothing cached to replace (as Inventory)."""

    def present(self, table: str, ids: Iterable[str]) -> frozenset[str]:
        self.lookups += 1
        if self.down:
            raise SourceUnavailable("fake database is down")
        if table not in self.tables:
            raise Terminal(f'table "{table}" does not exist')
        return frozenset(self.tables[table]) & frozenset(ids)


@dataclass
class FakePods:
    """The apiserver's pods per kind. A delete marks the pod terminating (a graceful delete);
    `finish_deletes()` makes them go, as the kubelet would. `cache_lags` keeps the watch
    cache (`pods()`) from showing changes until `sync()`, as a slow watch would."""

    pods: dict[str, dict[str, Pod]] = field(default_factory=dict)
    down: bool = False
    refuse_create: dict[str, Exception] = field(default_factory=dict)  # kind -> raised
    creates: int = 0
    deletes: int = 0
    adopts: int = 0
    lists: int = 0
    cache_lags: bool = False
    _cache: dict[str, dict[str, Pod]] = field(default_factory=dict)
    _uids: int = 0
    # kind -> name -> uid of the last incarnation deleted, and as far as the cache has seen
    _deleted: dict[str, dict[str, str]] = field(default_factory=dict)
    _gone_cached: dict[str, dict[str, str]] = field(default_factory=dict)

    def _check(self) -> None:
        if self.down:
            raise SourceUnavailable("fake apiserver is down")

    def list_pods(self, kind: str) -> dict[str, Pod]:
        self._check()
        self.lists += 1
        return dict(self.pods.get(kind, {}))

    def create_pods(self, kind: str, instance_ids: Sequence[int]) -> SlowStartResult[Pod]:
        self._check()
        out: SlowStartResult[Pod] = SlowStartResult()
        for i, iid in enumerate(instance_ids):
            self.creates += 1
            if kind in self.refuse_create:
                out.failed.append((i, self.refuse_create[kind]))
                continue
            name = pod_name(NAMES[kind], iid)
            if name in self.pods.get(kind, {}):
                out.succeeded.append((i, self.pods[kind][name]))
                continue
            self._uids += 1
            pod = Pod(name, iid, "Pending", started_at=0.0, uid=f"uid-{self._uids}")
            self.pods.setdefault(kind, {})[name] = pod
            out.succeeded.append((i, pod))
        self._maybe_sync()
        return out

    def delete_pod(self, kind: str, name: str, *, uid: str | None = None) -> None:
        self._check()
        self.deletes += 1
        pod = self.pods.get(kind, {}).get(name)
        if pod is None or (uid and pod.uid != uid):
            return
        self.pods[kind][name] = replace(pod, terminating=True)
        self._maybe_sync()

    def adopt_pod(self, kind: str, name: str, instance_id: int, *, uid: str | None = None) -> None:
        self._check()
        self.adopts += 1
        pod = self.pods.get(kind, {}).get(name)
        if pod is not None and (not uid or pod.uid == uid):
            self.pods[kind][name] = replace(pod, labelled=True)
        self._maybe_sync()

    def set_phase(self, kind: str, name: str, phase: str) -> None:
        self.pods[kind][name] = replace(self.pods[kind][name], phase=phase)
        self._maybe_sync()

    def run_all(self) -> None:
        for pods in self.pods.values():
            for name, pod in pods.items():
                if pod.phase == "Pending":
                    pods[name] = replace(pod, phase="Running")
        self._maybe_sync()

    def finish_deletes(self) -> None:
        for kind, pods in self.pods.items():
            for name in [n for n, p in pods.items() if p.terminating]:
                self._deleted.setdefault(kind, {})[name] = pods.pop(name).uid
        self._maybe_sync()

    # --- the watch cache (PodCache port) ---

    def pods_cached(self, kind: str) -> dict[str, Pod] | None:
        cache = self._cache.get(kind)
        return dict(cache) if cache is not None else None

    def gone_cached(self, kind: str) -> dict[str, str]:
        return dict(self._gone_cached.get(kind, {}))

    def sync(self) -> None:
        """The cache catches up, as a watch does: with every deletion since, too."""
        self._cache = {k: dict(v) for k, v in self.pods.items()}
        self._gone_cached = {k: dict(v) for k, v in self._deleted.items()}

    def _maybe_sync(self) -> None:
        if not self.cache_lags:
            self.sync()


@dataclass
class FakePodCache:
    """The pod watch's cache over a FakePods."""

    source: FakePods

    def pods(self, kind: str) -> dict[str, Pod] | None:
        return self.source.pods_cached(kind)

    def gone(self, kind: str) -> dict[str, str]:
        return self.source.gone_cached(kind)


@dataclass
class FakeEvents:
    """Kubernetes Events the pipeline asked for: (kind, namespace, pod, action, reason)."""

    recorded: list[tuple[str, str, str, str, str]] = field(default_factory=list)

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
    ) -> None:
        self.recorded.append((kind, namespace, pod_name, action, reason))


@dataclass
class FakeHeartbeats:
    connected: bool = True
    connected_since: float | None = 0.0
    last_seen: dict[str, dict[int, float]] = field(default_factory=dict)

    def snapshot(self, kind: str) -> Heartbeats:
        return Heartbeats(self.connected, self.connected_since, dict(self.last_seen.get(kind, {})))

    def forget(self, kind: str, instance_id: int) -> None:
        self.last_seen.get(kind, {}).pop(instance_id, None)


@dataclass
class FakeClock:
    """Wall and monotonic time that move only when told."""

    now: float = 1_700_000_000.0

    def wall(self) -> float:
        return self.now

    def mono(self) -> float:
        return self.now - 1_600_000_000.0

    def advance(self, seconds: float) -> None:
        self.now += seconds


def write_policy(folder: Path, tick: float = 60, **kinds: dict[str, object]) -> Path:
    """A policy.yaml for Thing (init 3) and Rule (init 2), each kind's dict overriding."""
    base: dict[str, dict[str, object]] = {
        "Thing": {
            "table": "Thing",
            "instanceName": NAMES["Thing"],
            "template": str(REPO / "templates/iota-dac/pod-template.yml"),
            "initInstances": 3,
        },
        "Rule": {
            "table": "Rule",
            "instanceName": NAMES["Rule"],
            "template": str(REPO / "templates/iota-rules-engine/pod-template.yml"),
            "initInstances": 3,
        },
    }
    for kind, override in kinds.items():
        base[kind] = {**base[kind], **override}
    path = folder / "policy.yaml"
    path.write_text(yaml.safe_dump({"tickSeconds": tick, "kinds": base}, sort_keys=False))
    return path


@dataclass
class FakeLeadership:
    """Leader election as the pipeline sees it: `leading` decides."""

    leading: bool = False
    identity: str = "me"
    transitions: int = 0

    @property
    def is_leader(self) -> bool:
        return self.leading

    def may_act(self) -> bool:
        return self.leading

    def leader(self) -> str | None:
        return self.identity if self.leading else "someone-else"

    def leader_url(self) -> str | None:
        return None  # publishes no REST address: a standby's writes are refused, not forwarded


@dataclass
class FakePins:
    """Operators' pins as ZooKeeper would keep them (`<root>/_scale/<Kind>`), in a dict."""

    data: dict[str, Pin] = field(default_factory=dict)
    down: bool = False
    writes: int = 0
    during_read: Callable[[], None] | None = None  # runs after a read took its copy

    def read(self) -> dict[str, Pin]:
        if self.down:
            raise SourceUnavailable("fake ZooKeeper is down")
        pins = dict(self.data)
        if self.during_read is not None:
            self.during_read()
        return pins

    def write(self, kind: str, pin: Pin) -> None:
        if self.down:
            raise SourceUnavailable("fake ZooKeeper is down")
        self.writes += 1
        self.data[kind] = pin

    def delete(self, kind: str) -> None:
        if self.down:
            raise SourceUnavailable("fake ZooKeeper is down")
        self.writes += 1
        self.data.pop(kind, None)
