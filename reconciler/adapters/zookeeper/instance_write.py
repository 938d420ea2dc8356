"""The transaction that writes one instance (docs/contracts.md "ZooKeeper layout"), decided
before it is sent: which node is checked, created or set, and on which version.

Pure: no client and no I/O. `ZkStore.write_instance` (store.py) lists what exists when it
must, hands it here, sends the ops in one transaction and reads the versions it left back
from the answers. Kept apart so that the rules of a compare-and-set write can be read, and
tested, without a server.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from reconciler.adapters.zookeeper.layout import CHILDREN, encode_instance
from reconciler.domain.model import Instance, NodeVersions


@dataclass(frozen=True, slots=True)
class Op:
    """One op of a transaction. `version` -1: any (ZooKeeper's own convention)."""

    action: Literal["check", "create", "set"]
    path: str
    data: bytes = b""
    version: int = -1


@dataclass(frozen=True, slots=True)
class InstanceWrite:
    """What a write of one instance stores and what it must find (see `ZkStore.write_instance`)."""

    base: str  # <root>/<kind>/<instanceId>
    node: bytes
    children: dict[str, bytes | None]  # in `CHILDREN` order; None: no data (`tmp`)
    versions: NodeVersions | None  # as read, or as our last write left them
    # A compare-and-set (versions read, or a create): versioned nodes are written on the
    # versions expected, and a missing one must still be missing. Otherwise unconditional.
    checked: bool
    # Checked in the transaction but not sent again: with `count_only`, the ids did not
    # change, and a full instance's ids are most of a write's bytes.
    unsent: frozenset[str]

    @classmethod
    def of(cls, base: str, instance: Instance, *, create: bool, count_only: bool) -> InstanceWrite:
        node, children = encode_instance(instance)
        versions = instance.versions
        unsent = (
            frozenset({f"{base}/resources", f"{base}/_reload"})
            if count_only
            and versions is not None
            and versions.resources is not None
            and versions.reload is not None
            else frozenset()
        )
        return cls(base, node, children, versions, versions is not None or create, unsent)

    @property
    def expected(self) -> dict[str, int | None]:
        """The version each data node must have (None: missing, or not known)."""
        v = self.versions
        return {
            self.base: v.node if v else None,
            f"{self.base}/resources": v.resources if v else None,
            f"{self.base}/_reload": v.reload if v else None,
        }

    @property
    def all_known(self) -> bool:
        """Every node existed when read, so the transaction's checks say they still do and
        nothing needs listing first (a round trip saved on the path of every row event)."""
        v = self.versions
        return v is not None and v.tmp and None not in (v.node, v.resources, v.reload)

    def ops(self, present: set[str] | None) -> list[Op]:
        """The transaction, nodes in layout order. `present`: the instance node's children
        as they are now (None: no instance node); ignored when `all_known`."""
        if self.all_known:
            present = set(CHILDREN)
        # `tmp` carries no data to version, so that it still exists is checked instead.
        ops = [Op("check", f"{self.base}/tmp")] if self.all_known else []
        targets = [
            (self.base, self.node, present is not None),
            *(
                (f"{self.base}/{c}", value, present is not None and c in present)
                for c, value in self.children.items()
            ),
        ]
        for path, value, exists in targets:
            op = self._op(path, value, exists)
            if op is not None:
                ops.append(op)
        return ops

    def _op(self, path: str, value: bytes | None, exists: bool) -> Op | None:
        expected = self.expected
        if path in self.unsent:
            return Op("check", path, version=_known(expected[path]))  # unchanged, as read
        if path in expected and self.checked:
            version = expected[path]
            if version is None:  # missing when read: must still be missing
                return Op("create", path, value or b"")
            return Op("set", path, value or b"", version)
        if not exists:  # `tmp` is created too (with the workers' area's ACL, access.py)
            return Op("create", path, value or b"")
        if value is not None:
            return Op("set", path, value)
        return None  # `tmp` exists and carries no data: leave the workers' node alone

    def versions_after(self, ops: Sequence[Op], results: Sequence[Any]) -> NodeVersions:
        """The versions the committed transaction left, from its answers: a node only
        checked keeps the version it was read with."""
        expected = self.expected
        after = {
            op.path: _known(expected[op.path]) if op.path in self.unsent else _version_after(res)
            for op, res in zip(ops, results, strict=True)
            if op.path in expected
        }
        return NodeVersions(
            after[self.base], after[f"{self.base}/resources"], after[f"{self.base}/_reload"]
        )

    def holds(self, got: dict[str, tuple[bytes | None, int | None]]) -> NodeVersions | None:
        """The versions of the instance if `got` (each node's data and version, None:
        missing) is exactly what this write stores, else None."""
        wanted = {self.base: self.node, **{f"{self.base}/{c}": v for c, v in self.children.items()}}
        for path, value in wanted.items():
            data, version = got[path]
            if version is None or (value is not None and data != value):
                return None
        return NodeVersions(
            got[self.base][1], got[f"{self.base}/resources"][1], got[f"{self.base}/_reload"][1]
        )

    @property
    def paths(self) -> list[str]:
        """Every node the write stores, the instance node first."""
        return [self.base, *(f"{self.base}/{c}" for c in self.children)]


def _known(version: int | None) -> int:
    assert version is not None  # `unsent` holds only nodes whose version was read
    return version


def _version_after(result: Any) -> int:
    """A node's version after a transaction's op: a set_data answers with the new stat, a
    create with the path (a new node's version is 0)."""
    return 0 if isinstance(result, str) else int(result.version)
