"""The assignment as another ZooKeeper client sees it (docs/contracts.md "ZooKeeper layout",
read with kazoo directly): what the workers would read, in a process apart from the daemon.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass

from kazoo.client import KazooClient
from kazoo.exceptions import NoNodeError
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


class IdWatcher:
    """Data watches on every `<root>/<kind>/<i>/resources` node, and a children watch on the
    kind node for instances to come: each change is read at once, so detection costs no
    polling. `expect(ids)` before the ids can appear; `wait(ids)` for the monotonic time of the
    first read that showed each of them."""

    def __init__(self, hosts: str, kind: str = "Thing") -> None:
        self.kazoo = connect(hosts)
        self.kind = kind
        self.cond = threading.Condition()
        self.pending: set[str] = set()
        self.seen: dict[str, float] = {}
        self.watched: set[str] = set()
        self.reads = 0
        if not self.kazoo.exists(f"{ROOT}/{kind}"):
            raise RuntimeError(f"{ROOT}/{kind} does not exist yet: start after the first pass")
        ChildrenWatch(self.kazoo, f"{ROOT}/{kind}", self._children)

    def _children(self, children: list[str]) -> None:
        for c in children:
            if c.isdigit() and c not in self.watched:
                self.watched.add(c)
                DataWatch(self.kazoo, f"{ROOT}/{self.kind}/{c}/resources", self._data)

    def _data(self, data: bytes | None, _stat: object) -> None:
        now = time.monotonic()  # the read is done: what it shows was readable by now
        if data is None:
            return
        with self.cond:
            self.reads += 1
            if not self.pending:
                return
            hit = self.pending.intersection(json.loads(data)["ids"])
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
