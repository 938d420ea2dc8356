"""ZooKeeper: where the assignment lives and where the workers read it (docs/contracts.md
"ZooKeeper layout").

`ZkStore` reads, writes and deletes instances on the session it is given: its reads are
`ZkReader`'s (read.py), the ops of an instance's write `InstanceWrite`'s (instance_write.py,
pure). The layout itself (the paths, the JSON of each node, what makes an instance
well-formed) is `layout`'s, pure.

Rules this module keeps, and why:

- Every call is bounded and every transaction checked (and fenced under leader election):
  `ZkSession`'s job (session.py); whatever cannot be reached is `SourceUnavailable`.
- All nodes of one instance go in ONE transaction (multi), so a worker never sees a
  half-written instance; never several instances in one, because ZooKeeper caps the size
  of a transaction (`jute.maxbuffer`) and a full instance's ids already take a large share
  of it.
- Every write is a compare-and-set on the versions the instance was read with
  (`Instance.versions`; a node missing then is created, so it must still be missing; a new
  instance's node must not exist): another writer's change is never overwritten, the write
  fails with `Conflict` and the next pass re-reads. A write returns the versions it left,
  for the next write of the same instance.
- Still idempotent: when the versions no longer match because our own commit landed before
  a ConnectionLoss hid its answer, the retry finds exactly what it writes and succeeds. A
  write repairs an instance whose child went missing in the same transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from kazoo.exceptions import BadVersionError, NodeExistsError, NoNodeError, NotEmptyError

from reconciler.adapters.zookeeper.instance_write import InstanceWrite, Op
from reconciler.adapters.zookeeper.layout import CHILDREN, dumps
from reconciler.adapters.zookeeper.read import Watch, ZkReader
from reconciler.adapters.zookeeper.session import Fence, ZkSession, ZkTransactionError
from reconciler.domain.errors import Conflict
from reconciler.domain.ids import SortedIds
from reconciler.domain.model import Assignment, Instance, NodeVersions

# Re-exported for callers that take the layout's names from the store.
__all__ = ["CHILDREN", "Watch", "ZkSession", "ZkStore", "ZkTransactionError", "dumps"]

# The logger name is part of the log format operators filter on: it does not follow the
# module when code moves (docs/architecture.md "Logs").
log = logging.getLogger("reconciler.adapters.zookeeper")

# How often delete_instance re-gathers the tree when a worker adds a child meanwhile.
_DELETE_ATTEMPTS = 5


class ZkStore:
    """Reads and writes the per-kind assignment under the session's `root` (docs/contracts.md
    "ZooKeeper layout"). `fence`: the leader election's (session.py); None: no election,
    every write unfenced."""

    def __init__(self, session: ZkSession, *, fence: Fence | None = None) -> None:
        self.session = session
        self.reader = ZkReader(session)
        self._fence = fence

    def read(self, kind: str) -> Assignment:
        """The assignment of `kind` (`ZkReader.read`)."""
        return self.reader.read(kind)

    def adopt(self, kind: str, ids: Mapping[int, SortedIds], rows: tuple[str, ...]) -> None:
        """Nothing kept between reads to replace (CachedZkStore keeps them)."""

    # -- write -------------------------------------------------------------------------------

    def write_instance(
        self, kind: str, instance: Instance, *, create: bool, count_only: bool = False
    ) -> Instance:
        """Write every node of `instance` in one transaction; returns it with the versions
        the write left (the next write of it must match them).

        Compare-and-set: an instance read from ZooKeeper (`instance.versions`) is written
        only if none of its nodes changed since (a node missing then is created, so it must
        still be missing); `create=True` without versions creates the instance node, so it
        must not exist. Otherwise nothing is written and `Conflict` is raised: another
        writer's change is never overwritten. Unless what ZooKeeper holds is already exactly
        what we write: our own commit that landed before a lost connection hid its answer
        (the retry then finds the versions moved by it), so the write is idempotent.
        Without versions and without `create` (a tool, a test) the write is unconditional:
        nodes that exist are set, missing ones created. Stores exactly
        `instance.reload_times` (the planner bumps it); `create=True` also makes sure
        `<root>/<kind>` exists. `count_only` (only the count changed, on known versions):
        `resources` and `_reload` are checked in the transaction, not sent again (a full
        instance's ids are most of a write's bytes)."""
        write = InstanceWrite.of(
            self.reader.path(kind, instance.instance_id),
            instance,
            create=create,
            count_only=count_only,
        )

        def attempt(deadline: float) -> Instance:
            if create:
                self._ensure_kind(kind, deadline)
            try:
                versions = self._commit_instance(write, deadline)
            except ZkTransactionError as exc:
                if not _rejected_by_a_check(write, exc):
                    raise
                versions = self._landed_or_conflict(write, exc, deadline)
            return replace(instance, versions=versions, complete=True)

        return self.session.bounded(f"write {write.base}", attempt)

    def _ensure_kind(self, kind: str, deadline: float) -> None:
        """`<root>/<kind>` exists before a new instance goes under it."""
        kind_path = self.reader.path(kind)
        if self.session.wait(self.session.client.exists_async(kind_path), deadline) is None:
            self._create_kind(kind_path, deadline)

    def _commit_instance(self, write: InstanceWrite, deadline: float) -> NodeVersions:
        """Every node of the instance in one transaction; the versions it left."""
        ops = write.ops(None if write.all_known else self._children_now(write.base, deadline))
        results = self._commit_ops(ops, deadline, f"write {write.base}")
        return write.versions_after(ops, results)

    def _children_now(self, base: str, deadline: float) -> set[str] | None:
        """The children of the instance node (None: it does not exist), to know what to
        create and what to set when some version was not read."""
        try:
            return set(self.session.wait(self.session.client.get_children_async(base), deadline))
        except NoNodeError:
            return None

    def _commit_ops(self, ops: list[Op], deadline: float, action: str) -> list[Any]:
        """Send `ops` as one fenced transaction; the answer of each, in order."""
        node_acl = self.session.node_acl

        def build(tx: Any) -> list[str]:
            for op in ops:
                if op.action == "check":
                    tx.check(op.path, op.version)
                elif op.action == "create":  # each node with its ACL (access.py)
                    tx.create(op.path, op.data, acl=node_acl(op.path))
                else:
                    tx.set_data(op.path, op.data, version=op.version)
            return [op.path for op in ops]

        return self.session.commit(build, deadline, action, fence=self._fence)

    def _landed_or_conflict(
        self, write: InstanceWrite, exc: ZkTransactionError, deadline: float
    ) -> NodeVersions:
        """A compare-and-set that failed: ours if ZooKeeper already holds exactly what we
        write (a commit of ours whose answer the connection lost), else `Conflict`."""
        landed = self._as_written(write, deadline)
        if landed is None:
            raise Conflict(
                f"write {write.base}: changed by another writer since read "
                f"({type(exc.error).__name__} at {exc.path}); nothing written"
            ) from exc
        return landed

    def _as_written(self, write: InstanceWrite, deadline: float) -> NodeVersions | None:
        """The versions of the instance if ZooKeeper holds exactly what `write` stores,
        else None."""
        pending = {path: self.session.client.get_async(path) for path in write.paths}
        return write.holds({path: self.reader.data(r, deadline) for path, r in pending.items()})

    def _create_kind(self, kind_path: str, deadline: float) -> None:
        """`<root>/<kind>` (and the root), fenced like every other write."""
        missing = []
        path = ""
        for part in kind_path.strip("/").split("/"):
            path += "/" + part
            if self.session.wait(self.session.client.exists_async(path), deadline) is None:
                missing.append(path)

        def ops(tx: Any) -> list[str]:
            for p in missing:
                tx.create(p, b"")
            return missing

        try:
            self.session.commit(ops, deadline, f"create {kind_path}", fence=self._fence)
        except ZkTransactionError as exc:
            if not isinstance(exc.error, NodeExistsError):
                raise  # another writer created it meanwhile: fine

    def delete_instance(
        self, kind: str, instance_id: int, *, versions: NodeVersions | None = None
    ) -> None:
        """Delete the instance and everything under it in one transaction (workers may have
        added `tmp/status` and more). A missing instance is already deleted. With `versions`
        (as read, or as our last write left them) a compare-and-set: if another writer
        changed the instance since, nothing is deleted (`Conflict`)."""
        base = self.reader.path(kind, instance_id)
        expect = (
            {
                base: versions.node,
                f"{base}/resources": versions.resources,
                f"{base}/_reload": versions.reload,
            }
            if versions is not None
            else {}
        )

        def delete(deadline: float) -> None:
            for _attempt in range(_DELETE_ATTEMPTS):
                try:
                    tree = self._tree(base, deadline)
                except NoNodeError:
                    return  # gone already (or vanished while we looked)

                def ops(tx: Any, tree: list[str] = tree) -> list[str]:
                    for path in tree:
                        version = expect.get(path)
                        tx.delete(path, -1 if version is None else version)
                    return tree

                try:
                    self.session.commit(ops, deadline, f"delete {base}", fence=self._fence)
                    return
                except ZkTransactionError as exc:
                    if isinstance(exc.error, BadVersionError):
                        raise Conflict(
                            f"delete {base}: changed by another writer since read "
                            f"(BadVersion at {exc.path}); nothing deleted"
                        ) from exc
                    # NotEmpty: a worker added a node meanwhile. NoNode: someone else
                    # deleted part of it. Either way, look again.
                    if not isinstance(exc.error, NotEmptyError | NoNodeError):
                        raise
                    log.info("delete %s raced (%s); retrying", base, exc)
            raise ZkTransactionError(base, NotEmptyError(), "delete kept racing")

        self.session.bounded(f"delete {base}", delete)

    def _tree(self, path: str, deadline: float) -> list[str]:
        """`path` and all its descendants, children before parents (deletion order)."""
        out: list[str] = []
        for child in self.session.wait(self.session.client.get_children_async(path), deadline):
            try:
                out.extend(self._tree(f"{path}/{child}", deadline))
            except NoNodeError:
                continue  # removed while we walked: nothing to delete there
        out.append(path)
        return out


def _rejected_by_a_check(write: InstanceWrite, exc: ZkTransactionError) -> bool:
    """A compare-and-set found a version or a node other than it expected (rather than a
    refused login or an unconditional write that failed)."""
    return write.checked and isinstance(exc.error, BadVersionError | NodeExistsError | NoNodeError)
