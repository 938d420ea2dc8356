"""Reading an assignment from ZooKeeper (docs/contracts.md "ZooKeeper layout"), on a session
it is given: what `ZkStore` (store.py) and `CachedZkStore` (cache.py) read with.

Every request of a read is pipelined (one round trip's latency for a whole kind, a second
one for the stats of `tmp`'s children), every wait bounded by the call's deadline. With a
`watch`, every node read is left watched, for the cache that keeps the assignment
(cache.py).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from kazoo.exceptions import NoNodeError
from kazoo.interfaces import IAsyncResult

from reconciler.adapters.zookeeper.layout import (
    CHILDREN,
    decode_instance,
    is_worker_session,
    node_path,
    parse_instance_name,
)
from reconciler.adapters.zookeeper.session import ZkSession
from reconciler.domain.id_strings import in_row_strings
from reconciler.domain.model import Assignment, Instance, NodeVersions
from reconciler.telemetry import metrics

# The logger name is part of the log format operators filter on: it does not follow the
# module when code moves (docs/architecture.md "Logs").
log = logging.getLogger("reconciler.adapters.zookeeper")

# A kazoo watch callback: called once, on kazoo's event thread, with the WatchedEvent.
Watch = Callable[[Any], None]

# Children of `<id>/tmp` whose stat a read looks at for a worker's ephemeral node. Workers put
# one there ("status"); the bound keeps a cluttered `tmp` from multiplying a read's requests.
_TMP_CHILDREN_CHECKED = 8


class ZkReader:
    """The assignment of a kind, read under the session's `root`.

    `read` is a whole bounded call; the other public methods are steps of one, to be called
    inside `session.bounded` with its deadline (the store and the cache compose them)."""

    def __init__(self, session: ZkSession) -> None:
        self.session = session
        # Per kind, the sorted strings of its rows (the last pass's, CachedZkStore.adopt): an
        # instance read is re-made of them as it is parsed (domain/id_strings.py), so a
        # re-read leaves no copy of its ids behind, not even until the pass adopts it.
        self.row_strings: dict[str, tuple[str, ...]] = {}

    def path(self, kind: str, instance_id: int | None = None, child: str | None = None) -> str:
        return node_path(self.session.root, kind, instance_id, child)

    # -- read --------------------------------------------------------------------------------

    def read(self, kind: str) -> Assignment:
        """The assignment of `kind`. A missing kind node is an empty assignment.

        Foreign (non-integer) children are ignored. An instance with a missing or malformed
        node comes back with `complete=False` (and whatever could be read), so the planner
        rewrites it instead of the whole tick failing."""
        return self.session.bounded(f"read {kind}", lambda deadline: self.read_kind(kind, deadline))

    def read_kind(self, kind: str, deadline: float, watch: Watch | None = None) -> Assignment:
        """Every instance of `kind`; with `watch`, a watch is left on every node read (the
        kind node's children, each instance's nodes and `tmp`'s children), so a cache can
        learn of any later change (cache.py)."""
        names = self.instance_names(kind, deadline, watch)
        if names is None:
            return {}
        return self.read_instances(kind, sorted(names), deadline, watch)

    def instance_names(
        self, kind: str, deadline: float, watch: Watch | None = None
    ) -> set[int] | None:
        """The instance ids under `<root>/<kind>`; None when the kind node does not exist
        (with `watch`, then armed for its creation)."""
        kind_path = self.path(kind)
        client, wait = self.session.client, self.session.wait
        try:
            names = wait(client.get_children_async(kind_path, watch=watch), deadline)
        except NoNodeError:
            if watch is not None and (
                wait(client.exists_async(kind_path, watch=watch), deadline) is not None
            ):
                return self.instance_names(kind, deadline, watch)  # created meanwhile
            return None
        ids: set[int] = set()
        for name in names:
            instance_id = parse_instance_name(name)
            if instance_id is not None:
                ids.add(instance_id)
            else:
                log.warning("ignoring non-instance node %s/%s", kind_path, name)
        return ids

    def read_instances(
        self, kind: str, ids: list[int], deadline: float, watch: Watch | None = None
    ) -> Assignment:
        """The instances `ids` of `kind` (those that exist)."""
        # Pipeline every request first, then collect: one round trip's latency for the
        # whole kind instead of one per node; a second one for the stats of `tmp`'s children
        # (a worker's ephemeral node there is a live session).
        client = self.session.client
        pending = {
            i: (
                client.get_async(self.path(kind, i), watch=watch),
                client.get_async(self.path(kind, i, "resources"), watch=watch),
                client.get_async(self.path(kind, i, "_reload"), watch=watch),
                client.get_children_async(self.path(kind, i, "tmp"), watch=watch),
            )
            for i in ids
        }
        if watch is not None:
            # A missing child gets no watch from get(): arm one for its creation.
            pending_exists = {
                i: [client.exists_async(self.path(kind, i, c), watch=watch) for c in CHILDREN]
                for i in ids
            }
        tmp_children = {i: self.children(tmp, deadline) for i, (*_, tmp) in pending.items()}
        worker = self.worker_sessions(kind, tmp_children, deadline)
        assignment: Assignment = {}
        for i, (base, resources, reload_, _tmp) in pending.items():
            instance = self._instance(
                kind,
                i,
                base,
                resources,
                reload_,
                tmp_exists=tmp_children[i] is not None,
                worker_session=worker.get(i, False),
                deadline=deadline,
            )
            if instance is not None:
                assignment[i] = instance
        if watch is not None:
            for results in pending_exists.values():
                self.stats(results, deadline)
        return assignment

    def worker_sessions(
        self, kind: str, tmp_children: dict[int, list[str] | None], deadline: float
    ) -> dict[int, bool]:
        """Whether a worker's ephemeral node sits under each instance's `tmp`."""
        stats = {
            i: [
                self.session.client.exists_async(f"{self.path(kind, i, 'tmp')}/{child}")
                for child in sorted(children)[:_TMP_CHILDREN_CHECKED]
            ]
            for i, children in tmp_children.items()
            if children
        }
        return {
            i: is_worker_session([stat.ephemeralOwner for stat in self.stats(results, deadline)])
            for i, results in stats.items()
        }

    def children(self, result: IAsyncResult, deadline: float) -> list[str] | None:
        """The children of a node listed with `get_children_async`; None if it does not exist."""
        try:
            return list(self.session.wait(result, deadline))
        except NoNodeError:
            return None

    def stats(self, results: list[IAsyncResult], deadline: float) -> list[Any]:
        """The stats of nodes asked with `exists_async`, leaving out those gone meanwhile."""
        wait = self.session.wait
        return [stat for stat in (wait(r, deadline) for r in results) if stat is not None]

    def _instance(
        self,
        kind: str,
        instance_id: int,
        base: IAsyncResult,
        resources: IAsyncResult,
        reload_: IAsyncResult,
        *,
        tmp_exists: bool,
        worker_session: bool,
        deadline: float,
    ) -> Instance | None:
        try:
            head, stat = self.session.wait(base, deadline)
            self._count_read(head)
        except NoNodeError:
            # Deleted between listing and reading: it is gone, not broken. (The other
            # requests complete on their own; nobody needs their answers.)
            return None
        res_data, res_version = self.data(resources, deadline)
        reload_data, reload_version = self.data(reload_, deadline)
        instance, problems = decode_instance(
            instance_id,
            head,
            res_data,
            reload_data,
            tmp_exists=tmp_exists,
            worker_session=worker_session,
            versions=NodeVersions(stat.version, res_version, reload_version, tmp_exists),
        )
        if problems:
            log.warning(
                "instance %s is incomplete: %s", self.path(kind, instance_id), "; ".join(problems)
            )
        strings = self.row_strings.get(kind)
        if strings is None:
            return instance
        # Runs of the rows only: an instance interleaved with others costs a search an id,
        # which the pass does after the read (reconcile/row_strings.py), not on its deadline.
        shared = in_row_strings({0: instance.ids}, strings, runs_only=True)
        return replace(instance, ids=shared[0]) if shared else instance

    def data(self, result: IAsyncResult, deadline: float) -> tuple[bytes | None, int | None]:
        """The data and version of a node read with `get_async`; None if it does not exist."""
        try:
            data, stat = self.session.wait(result, deadline)
        except NoNodeError:
            return None, None
        self._count_read(data)
        return data, stat.version

    def _count_read(self, data: bytes | None) -> None:
        self.session.bytes_read += len(data or b"")
        metrics.ZK_READ_BYTES.inc(len(data or b""))
