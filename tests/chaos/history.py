"""Which instances existed, and when: the layout the daemon itself wrote to ZooKeeper, followed
by the chaos driver (a thread), so that a pod deletion can be judged against its instance.

`InstanceHistory` lists each kind's instance nodes (`/iota/orchestration/<kind>/<n>`) every
POLL_SECONDS and records each node by its creation zxid (czxid): "the same instance n" means
the same czxid. A scale-down followed by a scale-up re-creates node n with a new czxid, so the
two are two lifetimes, however quickly the second follows the first. Polling, not a
ChildrenWatch: a watch fires once per change and the listing it triggers can miss a delete and
a create between two events; a listing that finds the parent's cversion changed reads every
child's czxid again, one that finds it unchanged knows no child came or went in between.

A `Lifetime` keeps two times: `first_seen`, when a read that saw the node had ended (it existed
at or before then), and `last_seen`, when a read that saw it began (it existed at or after
then). Nodes are never re-created with their czxid, so the node existed throughout
[first_seen, last_seen], gaps in the reads included (ZooKeeper down).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from kazoo.client import KazooClient
from kazoo.exceptions import NoNodeError

from tests.chaos.invariants import ROOT

POLL_SECONDS = 0.25

InstanceKey = tuple[str, int]  # (kind, instance number)


@dataclass(frozen=True)
class Lifetime:
    czxid: int
    first_seen: float  # time.time(): a read that ended then saw the node
    last_seen: float  # ... and one that began then saw it still


Lifetimes = Mapping[InstanceKey, Sequence[Lifetime]]


def stayed(
    lifetimes: Lifetimes, kind: str, number: int, start: float, end: float
) -> Lifetime | None:
    """The lifetime of instance `number` of `kind` that covers [start, end] (one node, one
    czxid, from before `start` to after `end`), if there is one."""
    for life in lifetimes.get((kind, number), ()):
        if life.first_seen <= start and life.last_seen >= end:
            return life
    return None


class InstanceHistory:
    """Follows every kind's instance nodes from its own ZooKeeper client (`hosts` with the
    fleet's chroot) until `close()`; `lifetimes()` is what it saw so far."""

    def __init__(self, hosts: str) -> None:
        self._kazoo = KazooClient(hosts=hosts, timeout=10)
        self._lock = threading.Lock()
        self._seen: dict[InstanceKey, dict[int, list[float]]] = {}  # czxid -> [first, last]
        # kind -> ((parent czxid, cversion), {number: czxid}): skips re-reading the children
        # of a kind whose set of children has not changed since.
        self._known: dict[str, tuple[tuple[int, int], dict[int, int]]] = {}
        self._read_at = 0.0  # when the last complete read began
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._follow, daemon=True, name="instances")

    def start(self) -> InstanceHistory:
        self._kazoo.start(timeout=15)
        self._read()  # the layout as it is when the history begins, before any fault
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=20)
        self._kazoo.stop()
        self._kazoo.close()

    def lifetimes(self) -> dict[InstanceKey, tuple[Lifetime, ...]]:
        with self._lock:
            return {
                key: tuple(Lifetime(c, first, last) for c, (first, last) in lives.items())
                for key, lives in self._seen.items()
            }

    def followed_until(self) -> float:
        """When the last complete read began: the history knows the layout up to then."""
        with self._lock:
            return self._read_at

    def _follow(self) -> None:
        while not self._stop.wait(POLL_SECONDS):
            try:
                self._read()
            except Exception:  # ZooKeeper down or restarting: a gap, closed by the next read
                continue

    def _read(self) -> None:
        began = time.time()
        found: dict[InstanceKey, int] = {}
        kinds = self._kazoo.get_children(ROOT) if self._kazoo.exists(ROOT) else []
        for kind in kinds:
            found.update({(kind, n): c for n, c in self._read_kind(kind).items()})
        ended = time.time()
        with self._lock:
            self._read_at = began
            for key, czxid in found.items():
                lives = self._seen.setdefault(key, {})
                if czxid in lives:
                    lives[czxid][1] = began
                else:
                    lives[czxid] = [ended, began]

    def _read_kind(self, kind: str) -> dict[int, int]:
        path = f"{ROOT}/{kind}"
        try:
            children, stat = self._kazoo.get_children(path, include_data=True)
        except NoNodeError:
            return {}
        version = (stat.czxid, stat.cversion)
        known = self._known.get(kind)
        if known is not None and known[0] == version:
            return known[1]
        czxids: dict[int, int] = {}
        complete = True
        for child in children:
            if not child.isdigit():
                continue
            node = self._kazoo.exists(f"{path}/{child}")
            if node is None:  # deleted since the listing: the next listing sees a new cversion
                complete = False
                continue
            czxids[int(child)] = node.czxid
        if complete:
            self._known[kind] = (version, czxids)
        return czxids
