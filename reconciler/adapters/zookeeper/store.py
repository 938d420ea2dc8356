"""ZooKeeper: where the assignment lives and where the workers read it (SPEC "ZooKeeper layout").

`ZkStore` reads, writes and deletes instances. The layout itself (the
paths, the JSON of each node, what makes an instance well-formed) is `zk_layout`'s, pure.

Rules this module keeps, and why:

- Every call is bounded and every transaction checked (and fenced under leader election):
  `ZkSession`'s job (zk_session.py); whatever cannot be reached is `SourceUnavailable`.
- All nodes of one instance go in ONE transaction (multi), so a worker never sees a
  half-written instance; never several instances in one, because ZooKeeper caps a
  transaction at ~1 MB (`jute.maxbuffer`) and 5,000 UUIDs are already ~200 KB.
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
from dataclasses import replace
from typing import Any

from kazoo.exceptions import BadVersionError, NodeExistsError, NoNodeError, NotEmptyError

from reconciler.adapters.zookeeper.layout import (
    CHILDREN,
    dumps,
    encode_instance,
)
from reconciler.adapters.zookeeper.read import Watch, ZkReader
from reconciler.adapters.zookeeper.session import ZkSession, ZkTransactionError
from reconciler.domain.errors import Conflict
from reconciler.domain.model import Instance, NodeVersions

# Re-exported: the layout's names were defined here before zk_layout.py existed.
__all__ = ["CHILDREN", "Watch", "ZkSession", "ZkStore", "ZkTransactionError", "dumps"]

log = logging.getLogger(__name__)

# How often delete_instance re-gathers the tree when a worker adds a child meanwhile.
_DELETE_ATTEMPTS = 5


class ZkStore(ZkReader):
    """Reads and writes the per-kind assignment under `root` (SPEC layout)."""

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
        `resources` and `_reload` are checked in the transaction, not sent again (at 5,000
        ids, 200 KB per write saved)."""
        base = self._path(kind, instance.instance_id)
        node, children = encode_instance(instance)
        versions = instance.versions
        checked = versions is not None or create

        def write(deadline: float) -> Instance:
            kind_path = self._path(kind)
            if create and self._wait(self._client.exists_async(kind_path), deadline) is None:
                self._create_kind(kind_path, deadline)
            # Nodes whose versions were read exist as long as the transaction's checks
            # pass; `tmp` carries no data to version, so that it still exists is checked
            # in the transaction instead (version -1: any). That spares a round trip, the
            # listing of the children, on the path of every row event.
            known = (
                versions is not None
                and versions.tmp
                and None not in (versions.node, versions.resources, versions.reload)
            )
            if known:
                present, base_exists = set(CHILDREN), True
            else:
                try:
                    present = set(self._wait(self._client.get_children_async(base), deadline))
                    base_exists = True
                except NoNodeError:
                    present, base_exists = set(), False
            expect = {
                base: versions.node if versions else None,
                f"{base}/resources": versions.resources if versions else None,
                f"{base}/_reload": versions.reload if versions else None,
            }

            written: list[str] = []
            unsent = (
                {f"{base}/resources", f"{base}/_reload"}
                if count_only
                and versions is not None
                and versions.resources is not None
                and versions.reload is not None
                else set()
            )

            def ops(tx: Any) -> list[str]:
                paths = written
                paths.clear()
                if known:
                    tx.check(f"{base}/tmp", -1)
                    paths.append(f"{base}/tmp")
                for path, value, exists in (
                    (base, node, base_exists),
                    *((f"{base}/{c}", v, c in present) for c, v in children.items()),
                ):
                    if path in unsent:
                        tx.check(path, expect[path])  # unchanged, as long as it is as read
                    elif path in expect and checked:
                        version = expect[path]
                        if version is None:  # must still be missing
                            tx.create(path, value or b"", acl=self.node_acl(path))
                        else:
                            tx.set_data(path, value or b"", version=version)
                    elif not exists:  # `tmp` gets the workers' area's ACL (zk_access.py)
                        tx.create(path, value or b"", acl=self.node_acl(path))
                    elif value is not None:
                        tx.set_data(path, value)
                    else:
                        continue  # tmp exists and carries no data: leave the workers' node
                    paths.append(path)
                return paths

            try:
                results = self._commit(ops, deadline, f"write {base}")
            except ZkTransactionError as exc:
                if not checked or not isinstance(
                    exc.error, BadVersionError | NodeExistsError | NoNodeError
                ):
                    raise
                landed = self._as_written(base, node, children, deadline)
                if landed is None:
                    raise Conflict(
                        f"write {base}: changed by another writer since read "
                        f"({type(exc.error).__name__} at {exc.path}); nothing written"
                    ) from exc
                return replace(instance, versions=landed, complete=True)
            after = {
                path: expect[path] if path in unsent else _version_after(res)
                for path, res in zip(written, results, strict=True)
                if path in expect
            }
            new = NodeVersions(after[base], after[f"{base}/resources"], after[f"{base}/_reload"])
            return replace(instance, versions=new, complete=True)

        return self._bounded(f"write {base}", write)

    def _as_written(
        self, base: str, node: bytes, children: dict[str, bytes | None], deadline: float
    ) -> NodeVersions | None:
        """The versions of the instance at `base` if ZooKeeper holds exactly what a write of
        (`node`, `children`) stores, else None."""
        wanted = {base: node, **{f"{base}/{c}": v for c, v in children.items()}}
        pending = {path: self._client.get_async(path) for path in wanted}
        got = {path: self._data(result, deadline) for path, result in pending.items()}
        for path, value in wanted.items():
            data, version = got[path]
            if version is None or (value is not None and data != value):
                return None
        return NodeVersions(got[base][1], got[f"{base}/resources"][1], got[f"{base}/_reload"][1])

    def _create_kind(self, kind_path: str, deadline: float) -> None:
        """`<root>/<kind>` (and the root), fenced like every other write."""
        missing = []
        path = ""
        for part in kind_path.strip("/").split("/"):
            path += "/" + part
            if self._wait(self._client.exists_async(path), deadline) is None:
                missing.append(path)

        def ops(tx: Any) -> list[str]:
            for p in missing:
                tx.create(p, b"")
            return missing

        try:
            self._commit(ops, deadline, f"create {kind_path}")
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
        base = self._path(kind, instance_id)
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
                    self._commit(ops, deadline, f"delete {base}")
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

        self._bounded(f"delete {base}", delete)

    def _tree(self, path: str, deadline: float) -> list[str]:
        """`path` and all its descendants, children before parents (deletion order)."""
        out: list[str] = []
        for child in self._wait(self._client.get_children_async(path), deadline):
            try:
                out.extend(self._tree(f"{path}/{child}", deadline))
            except NoNodeError:
                continue  # removed while we walked: nothing to delete there
        out.append(path)
        return out


def _version_after(result: Any) -> int:
    """A node's version after a transaction's op: a set_data answers with the new stat, a
    create with the path (a new node's version is 0)."""
    return 0 if isinstance(result, str) else int(result.version)
