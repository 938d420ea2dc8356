"""The assignment, cached and kept true by ZooKeeper watches: a converged pass reads nothing.

The daemon is the only writer of the assignment, so re-reading every `resources` node on
every pass (a read and the JSON of every instance, in proportion to the ids) learns nothing
almost every time.
Like a client-go informer, `CachedZkStore` reads a kind once with a watch left on every
node it read, and from then on answers from memory, re-reading only what a watch says
changed:

- A watch that fires marks its instance (or the kind's list of instances) dirty. The next
  read looks at dirty instances only: first their stats (no data), so our own writes, whose
  versions the cache already holds, cost one small round trip; data is fetched only when a
  version differs (another writer: a hand edit, an old orchestrator).
- Watches are one-shot and live in the session: on any disconnect (a watch may have been
  missed while we were away) and on any failed read or write the kind is forgotten and read
  in full again with fresh watches.
- A full re-read every `full_read_seconds` anyway (RECONCILER_FULL_READ_SECONDS): the
  backstop for anything a watch could not say. 0 reads everything on every call (no cache).

An instance nothing has changed is answered with the ids it was read or written with, and so
with their `SortedIds.version` (the contract is SortedIds'): a write keeps the planner's own
set, so the next plan sees the kind as that plan left it without comparing a single id.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

from kazoo.client import KazooState
from kazoo.exceptions import OperationTimeoutError
from kazoo.protocol.states import Callback

from reconciler.adapters.zookeeper.session import Fence, ZkSession
from reconciler.adapters.zookeeper.store import ZkStore
from reconciler.domain.ids import SortedIds, same_ids
from reconciler.domain.model import Assignment, Instance, NodeVersions

# Seconds between full re-reads of a kind (RECONCILER_FULL_READ_SECONDS's default).
FULL_READ_SECONDS = 300.0


@dataclass
class _KindCache:
    instances: Assignment
    read_at: float  # monotonic time of the full read
    dirty: set[int] = field(default_factory=set)  # instances a watch fired for
    names_dirty: bool = False  # the list of instances changed


class CachedZkStore:
    """The assignment store on `session` whose `read` answers from a watch-validated cache
    (see the module doc); writes go through a `ZkStore` on the same session and `fence`,
    and keep the cache what they left."""

    def __init__(
        self,
        session: ZkSession,
        *,
        fence: Fence | None = None,
        full_read_seconds: float = FULL_READ_SECONDS,
    ) -> None:
        self.session = session
        self.full_read_seconds = full_read_seconds
        self._store = ZkStore(session, fence=fence)
        self._reader = self._store.reader
        self._cache: dict[str, _KindCache] = {}
        self._cache_lock = threading.Lock()  # watches fire on kazoo's event thread
        session.client.add_listener(self._on_state)

    # -- watches -----------------------------------------------------------------------------

    def _on_state(self, state: str) -> None:
        """kazoo's event thread: no calls here, only forget."""
        if state != KazooState.CONNECTED:
            self.forget()  # a change may go unseen while we are away

    def _fired(self, event: Any) -> None:
        """A watch fired: mark what it covers dirty. On kazoo's event thread: no calls."""
        rest = event.path[len(self.session.root) + 1 :].split("/") if event.path else []
        with self._cache_lock:
            cached = self._cache.get(rest[0]) if rest else None
            if cached is None:
                return
            if len(rest) == 1:
                cached.names_dirty = True
            elif rest[1].isdigit():
                cached.dirty.add(int(rest[1]))
            else:
                self._cache.pop(rest[0], None)

    def forget(self, kind: str | None = None) -> None:
        """Drop the cache (of one kind): its next read is a full one."""
        with self._cache_lock:
            if kind is None:
                self._cache.clear()
            else:
                self._cache.pop(kind, None)

    # -- read ---------------------------------------------------------------------------------

    def read(self, kind: str) -> Assignment:
        try:
            return self.session.bounded(f"read {kind}", lambda d: self._cached(kind, d))
        except BaseException:
            self.forget(kind)  # what a failed read left half-known is read again in full
            raise

    def _barrier(self, deadline: float) -> None:
        """Return once every watch for a change committed before now has fired here: a
        `sync` (the server we talk to catches up with the leader; ZooKeeper sends a client
        its watch events before the answers that follow them), then a no-op queued behind
        the watch callbacks kazoo has already queued. One round trip: a cached read never
        misses a change made before it started."""
        client = self.session.client
        self.session.wait(client.sync_async(self.session.root), deadline)
        done = client.handler.event_object()
        client.handler.dispatch_callback(Callback("watch", done.set, ()))
        if not done.wait(max(0.0, deadline - time.monotonic())):
            raise OperationTimeoutError("watch callbacks did not drain in time")

    def _cached(self, kind: str, deadline: float) -> Assignment:
        self._barrier(deadline)
        now = time.monotonic()
        with self._cache_lock:
            cached = self._cache.get(kind)
            fresh = cached is not None and now - cached.read_at < self.full_read_seconds
            if fresh:
                assert cached is not None
                dirty, cached.dirty = cached.dirty, set()
                names_dirty, cached.names_dirty = cached.names_dirty, False
            else:
                # Registered before the read so that a watch firing during it is not lost.
                cached = self._cache[kind] = _KindCache({}, now)
        if not fresh:
            assignment = self._reader.read_kind(kind, deadline, watch=self._fired)
            with self._cache_lock:
                cached.instances = assignment
            return dict(assignment)
        if names_dirty:
            names = self._reader.instance_names(kind, deadline, watch=self._fired) or set()
            dirty |= names - cached.instances.keys()
            with self._cache_lock:
                for gone in cached.instances.keys() - names:
                    del cached.instances[gone]
        if dirty:
            self._refresh(kind, cached, sorted(dirty), deadline)
        return dict(cached.instances)

    def _refresh(self, kind: str, cached: _KindCache, ids: list[int], deadline: float) -> None:
        """Re-check the dirty instances `ids`: stats first (our own writes end there), the
        data only of those whose versions moved, or that are new, gone or incomplete."""
        client, watch, reader = self.session.client, self._fired, self._reader
        known = {i: cached.instances[i] for i in ids if i in cached.instances}
        stale = [i for i in ids if i not in known or not known[i].complete]
        asked = {
            i: (
                [
                    client.exists_async(reader.path(kind, i, c), watch=watch)
                    for c in (None, "resources", "_reload")
                ],
                client.get_children_async(reader.path(kind, i, "tmp"), watch=watch),
            )
            for i in known
            if i not in stale
        }
        tmp_children: dict[int, list[str] | None] = {}
        for i, (exists, tmp) in asked.items():
            base, resources, reload_ = (self.session.wait(r, deadline) for r in exists)
            children = reader.children(tmp, deadline)
            versions = (
                NodeVersions(base.version, resources.version, reload_.version)
                if base is not None and resources is not None and reload_ is not None
                else None
            )
            if versions is None or versions != known[i].versions or children is None:
                stale.append(i)  # another writer, or a missing node: read it all again
            else:
                tmp_children[i] = children
        workers = reader.worker_sessions(kind, tmp_children, deadline)
        fresh = reader.read_instances(kind, sorted(stale), deadline, watch) if stale else {}
        with self._cache_lock:
            for i in tmp_children:
                if known[i].worker_session != workers.get(i, False):
                    cached.instances[i] = replace(known[i], worker_session=workers.get(i, False))
            for i in stale:
                if i in fresh:
                    cached.instances[i] = fresh[i]
                else:
                    cached.instances.pop(i, None)

    def adopt(self, kind: str, ids: Mapping[int, SortedIds], rows: tuple[str, ...]) -> None:
        """Hold `ids[i]` (instance `i`'s set as last read, same version, in the rows' strings)
        in place of the parsed one. Only the set changes hands, and only while the cache
        still holds that version: an instance a watch, a re-read or a write has replaced
        since is newer, and stays. The instances read from now on are made of `rows` as
        they are parsed (ZkReader.row_strings)."""
        self._reader.row_strings[kind] = rows
        with self._kind_cache(kind) as cached:
            if cached is None:
                return
            for i, shared in ids.items():
                now = cached.instances.get(i)
                if now is not None and now.ids is not shared and same_ids(now.ids, shared):
                    cached.instances[i] = replace(now, ids=shared)

    # -- write: keep the cache what ZooKeeper holds ------------------------------------------

    def write_instance(
        self, kind: str, instance: Instance, *, create: bool, count_only: bool = False
    ) -> Instance:
        with self._forgotten_on_failure(kind):
            written = self._store.write_instance(
                kind, instance, create=create, count_only=count_only
            )
        with self._kind_cache(kind) as cached:
            if cached is not None:
                # The next read checks its versions (no data) and so arms the watches of a
                # new instance's nodes, which no read has left yet.
                cached.instances[instance.instance_id] = written
                cached.dirty.add(instance.instance_id)
        return written

    def delete_instance(
        self, kind: str, instance_id: int, *, versions: NodeVersions | None = None
    ) -> None:
        with self._forgotten_on_failure(kind):
            self._store.delete_instance(kind, instance_id, versions=versions)
        with self._kind_cache(kind) as cached:
            if cached is not None:
                cached.instances.pop(instance_id, None)

    @contextmanager
    def _forgotten_on_failure(self, kind: str) -> Iterator[None]:
        """A write that failed may have landed (or met another writer): read it in full."""
        try:
            yield
        except BaseException:
            self.forget(kind)
            raise

    @contextmanager
    def _kind_cache(self, kind: str) -> Iterator[_KindCache | None]:
        with self._cache_lock:
            yield self._cache.get(kind)
