"""The assignment as another ZooKeeper client sees it (docs/contracts.md "ZooKeeper layout",
read with kazoo directly): what the workers would read, in a process apart from the daemon.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from kazoo.client import KazooClient
from kazoo.exceptions import NoNodeError
from kazoo.protocol.states import ZnodeStat
from kazoo.recipe.watchers import ChildrenWatch, DataWatch

ROOT = "/iota/orchestration"  # under the daemon's chroot
CHILDREN = ("resources", "_reload", "tmp")


def connect(hosts: str) -> KazooClient:
    kazoo = KazooClient(hosts=hosts, timeout=10)
    kazoo.start(timeout=15)
    return kazoo


def _instances(kazoo: KazooClient, kind: str) -> list[str]:
    try:
        return sorted(c for c in kazoo.get_children(f"{ROOT}/{kind}") if c.isdigit())
    except NoNodeError:
        return []


def assigned(kazoo: KazooClient, kind: str) -> int:
    """Sum of `used` over `<root>/<kind>/<i>`: ids assigned, as the workers' nodes say."""
    pending = [kazoo.get_async(f"{ROOT}/{kind}/{i}") for i in _instances(kazoo, kind)]
    total = 0
    for p in pending:
        try:
            data, _ = p.get(timeout=30)
        except NoNodeError:
            continue  # deleted while we read: a scale-down
        total += int(json.loads(data or b"{}").get("used", 0))
    return total


def resources(kazoo: KazooClient, kind: str) -> dict[str, list[str]]:
    """Every instance's `resources` ids of the kind, by instance, read at once."""
    pending = [
        (i, kazoo.get_async(f"{ROOT}/{kind}/{i}/resources")) for i in _instances(kazoo, kind)
    ]
    out: dict[str, list[str]] = {}
    for i, p in pending:
        try:
            data, _ = p.get(timeout=60)
        except NoNodeError:
            continue  # deleted while we read: a scale-down
        out[i] = json.loads(data)["ids"]
    return out


@dataclass(frozen=True)
class NodeStamp:
    czxid: int
    mzxid: int
    version: int


def stamps(kazoo: KazooClient, kinds: Iterable[str]) -> dict[str, NodeStamp]:
    """Every node of the kinds' layout (instance nodes and their children) with its stat."""
    paths: list[str] = []
    for kind in kinds:
        for i in _instances(kazoo, kind):
            base = f"{ROOT}/{kind}/{i}"
            paths += [base, *(f"{base}/{c}" for c in CHILDREN)]
    pending = [(p, kazoo.exists_async(p)) for p in paths]
    out: dict[str, NodeStamp] = {}
    for path, p in pending:
        stat = p.get(timeout=30)
        if stat is not None:
            out[path] = NodeStamp(stat.czxid, stat.mzxid, stat.version)
    return out


def writes_between(before: dict[str, NodeStamp], after: dict[str, NodeStamp]) -> int:
    """ZooKeeper writes that explain the change: each data version step of a node, a create
    (plus the node's own versions since), a delete. Several writes to one node within the
    window all count: the version says how many."""
    n = sum(1 for p in before if p not in after)  # deleted
    for path, now in after.items():
        old = before.get(path)
        if old is None or old.czxid != now.czxid:  # created (or deleted and created again)
            n += 1 + now.version + (old is not None)
        elif now.mzxid != old.mzxid:
            n += now.version - old.version
    return n


class Presence:
    """Where tracked ids are, from successive reads of `resources` nodes: per node the tracked
    ids it held at its last read, per id how many nodes hold it, when each first appeared and
    when its count last fell to 0. Reads of different nodes may come in any order, so an id
    moved between instances may look gone for a moment: `gone` keeps the last fall."""

    def __init__(self, tracked: Iterable[str] = ()) -> None:
        self.tracked = frozenset(tracked)
        self.holding: dict[str, frozenset[str]] = {}  # node path -> tracked ids on it at last read
        self.count: dict[str, int] = {}  # tracked id -> nodes holding it
        self.appeared: dict[str, float] = {}
        self.gone: dict[str, float] = {}

    def update(self, path: str, ids: Iterable[str], at: float) -> None:
        """The node `path` read at `at` showed `ids` (all of them; untracked ones ignored)."""
        now_ids = self.tracked.intersection(ids)
        before = self.holding.get(path, frozenset())
        for rid in now_ids - before:
            self.count[rid] = self.count.get(rid, 0) + 1
            self.appeared.setdefault(rid, at)
        for rid in before - now_ids:
            self.count[rid] -= 1
            if self.count[rid] == 0:
                self.gone[rid] = at
        self.holding[path] = now_ids


class IdWatcher:
    """Data watches on every `<root>/<kind>/<i>/resources` node of the kinds, and a children
    watch on each kind node for instances to come: each change is read at once, so detection
    costs no polling. `expect(ids)` before the ids can appear; `wait(ids)` for the monotonic
    time of the first read that showed each of them.

    `track(ids)`: for these ids, every read also updates `presence` (a `Presence`). Each
    changed node is parsed once and only its tracked ids are kept, so a read costs the node's
    size, not the layout's. `lags_ms`: per read, the node's
    write (its mtime, the server's wall clock) to the end of our read: how far the watcher
    trails the daemon."""

    def __init__(
        self, hosts: str, kind: str = "Thing", *, kinds: Iterable[str] | None = None
    ) -> None:
        self.kazoo = connect(hosts)
        self.kinds = tuple(kinds) if kinds is not None else (kind,)
        self.cond = threading.Condition()
        self.pending: set[str] = set()
        self.seen: dict[str, float] = {}
        self.watched: set[str] = set()
        self.reads = 0
        self.presence = Presence()
        self.lags_ms: list[float] = []
        self.read_seconds = 0.0  # our own time spent parsing and diffing
        for k in self.kinds:
            if not self.kazoo.exists(f"{ROOT}/{k}"):
                raise RuntimeError(f"{ROOT}/{k} does not exist yet: start after the first pass")
        for k in self.kinds:
            ChildrenWatch(self.kazoo, f"{ROOT}/{k}", self._on_children(k))

    def track(self, ids: Iterable[str]) -> None:
        """Record appearances and removals of `ids` from now on (call before they change);
        the nodes are read again once so that ids already placed count as present."""
        with self.cond:
            self.presence = Presence(ids)
            paths = sorted(self.watched)
        now = time.monotonic()
        for path, p in [(x, self.kazoo.get_async(x)) for x in paths]:
            try:
                data, _ = p.get(timeout=30)
            except NoNodeError:
                continue
            with self.cond:
                if path not in self.presence.holding:  # a watch may have read it meanwhile
                    self.presence.update(path, json.loads(data)["ids"], now)

    def _on_children(self, kind: str) -> Callable[[list[str]], None]:
        def on_children(children: list[str]) -> None:
            for c in children:
                path = f"{ROOT}/{kind}/{c}/resources"
                if c.isdigit() and path not in self.watched:
                    self.watched.add(path)
                    DataWatch(self.kazoo, path, self._on_data(path))

        return on_children

    def _on_data(self, path: str) -> Callable[..., None]:
        # kazoo passes (data, stat, event) to a callback that takes three arguments: a
        # default-argument lambda would get the event as its path.
        def on_data(data: bytes | None, stat: ZnodeStat | None, _event: object = None) -> None:
            self._data(path, data, stat)

        return on_data

    def _data(self, path: str, data: bytes | None, stat: ZnodeStat | None) -> None:
        now = time.monotonic()  # the read is done: what it shows was readable by now
        wall = time.time()
        with self.cond:
            self.reads += 1
            if data is None:  # the instance was deleted: its ids are gone from it
                if self.presence.tracked:
                    self.presence.update(path, (), now)
                return
            if stat is not None:
                self.lags_ms.append(wall * 1000 - stat.mtime)
            if not self.pending and not self.presence.tracked:
                return
            t0 = time.perf_counter()
            ids = json.loads(data)["ids"]
            if self.presence.tracked:
                self.presence.update(path, ids, now)
            hit = self.pending.intersection(ids) if self.pending else set()
            self.read_seconds += time.perf_counter() - t0
            if hit:
                for rid in hit:
                    self.seen[rid] = now
                self.pending -= hit
                self.cond.notify_all()

    def expect(self, ids: Iterable[str]) -> None:
        with self.cond:
            self.pending.update(ids)

    def wait(self, ids: list[str], timeout: float) -> dict[str, float]:
        deadline = time.monotonic() + timeout
        with self.cond:
            while any(rid not in self.seen for rid in ids):
                left = deadline - time.monotonic()
                if left <= 0:
                    missing = sum(rid not in self.seen for rid in ids)
                    raise TimeoutError(f"{missing} of {len(ids)} ids not in ZooKeeper")
                self.cond.wait(left)
            return {rid: self.seen.pop(rid) for rid in ids}

    def close(self) -> None:
        self.kazoo.stop()
        self.kazoo.close()
