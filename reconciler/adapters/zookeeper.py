"""ZooKeeper: where the assignment lives and where the workers read it (SPEC "ZooKeeper layout").

`ZkStore` is the connection and the reads, transactions and deletes. The layout itself (the
paths, the JSON of each node, what makes an instance well-formed) is `zk_layout`'s, pure.

Rules this module keeps, and why:

- Every call is bounded. kazoo queues a request made while the client is reconnecting and
  sends it only once the connection is back, so a plain synchronous call can block for the
  whole outage. We fail fast when not connected and wait on async results with a timeout;
  `KazooRetry` covers short blips (ConnectionLoss) within the same bound. Whatever is left
  becomes `SourceUnavailable`, which the loop understands as "blind", not "empty".
- All nodes of one instance go in ONE transaction (multi), so a worker never sees a
  half-written instance; never several instances in one, because ZooKeeper caps a
  transaction at ~1 MB (`jute.maxbuffer`) and 5,000 UUIDs are already ~200 KB.
- `transaction().commit()` reports failures as exception objects in its result list rather
  than raising: every result is inspected and the failing path is named.
- A write decides create-vs-set per node from what exists right before the commit. That
  makes it idempotent, so retrying after a ConnectionLoss (when the first commit may or may
  not have landed) converges instead of failing with NodeExists, and it repairs an instance
  whose child went missing in the same transaction.
- The connection-state listener only records state: calling ZooKeeper from inside it
  deadlocks kazoo's event thread.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from kazoo.client import KazooClient, KazooState
from kazoo.exceptions import (
    ConnectionClosedError,
    ConnectionLoss,
    NoNodeError,
    NotEmptyError,
    OperationTimeoutError,
    RolledBackError,
    RuntimeInconsistency,
    SessionExpiredError,
)
from kazoo.handlers.threading import KazooTimeoutError
from kazoo.interfaces import IAsyncResult
from kazoo.retry import KazooRetry, RetryFailedError

from reconciler.adapters.zk_layout import (
    CHILDREN,
    decode_instance,
    dumps,
    encode_instance,
    node_path,
    parse_instance_name,
)
from reconciler.model import Assignment, Instance
from reconciler.ports import SourceUnavailable

# Re-exported: the layout's names were defined here before zk_layout.py existed.
__all__ = ["CHILDREN", "ZkStore", "ZkTransactionError", "dumps"]

log = logging.getLogger(__name__)

T = TypeVar("T")

# Errors that mean "the server could not be reached or did not answer in time".
_UNAVAILABLE = (
    ConnectionLoss,
    ConnectionClosedError,
    OperationTimeoutError,
    SessionExpiredError,
    RetryFailedError,
    KazooTimeoutError,
)

# How often delete_instance re-gathers the tree when a worker adds a child meanwhile.
_DELETE_ATTEMPTS = 5


class ZkTransactionError(Exception):
    """A ZooKeeper transaction was rejected (not a connectivity problem): names the path.

    Typically a race with another writer (NodeExists, NoNode). Nothing was written, since a
    multi is all-or-nothing; the loop retries the op on a later tick.
    """

    def __init__(self, path: str, error: BaseException, action: str) -> None:
        self.path = path
        self.error = error
        super().__init__(f"{action}: {type(error).__name__} at {path}")


class ZkStore:
    """Reads and writes the per-kind assignment under `root` (SPEC layout)."""

    def __init__(
        self, hosts: str, *, root: str = "/iota/orchestration", timeout: float = 10.0
    ) -> None:
        """`hosts` may carry a chroot ("host:port/chroot"); `timeout` bounds `start()` and
        every read or write, retries included."""
        self.hosts = hosts
        self.root = "/" + root.strip("/")
        self.timeout = timeout
        # Committed transactions + single writes; lets tests assert "a converged tick
        # writes nothing".
        self.writes = 0
        self._state: str = KazooState.LOST
        self._state_since = time.monotonic()
        self._state_lock = threading.Lock()
        # `_state_since` of the outage a call already gave up on (see `_bounded`).
        self._gave_up_at: float | None = None
        self._client = KazooClient(
            hosts=hosts,
            # Reconnect forever, but never back off beyond 2 s: after an outage the daemon
            # should see ZooKeeper again within a couple of seconds, not kazoo's default 60.
            connection_retry=KazooRetry(max_tries=-1, delay=0.1, backoff=2, max_delay=2.0),
        )
        self._client.add_listener(self._on_state)

    # -- connection --------------------------------------------------------------------------

    def _on_state(self, state: str) -> None:
        """Record the connection state. Runs on kazoo's event thread: never call ZooKeeper
        here (it deadlocks); only remember what happened."""
        with self._state_lock:
            previous, self._state = self._state, state
            self._state_since = time.monotonic()
        if state != previous:
            log.info("zookeeper connection %s -> %s (%s)", previous, state, self.hosts)

    def start(self) -> None:
        """Connect, waiting at most `timeout` seconds; `SourceUnavailable` if that fails.

        kazoo keeps reconnecting by itself after this, also across session expiry (we keep
        no ephemeral nodes or watches, so a new session loses nothing)."""
        try:
            self._client.start(timeout=self.timeout)
        except KazooTimeoutError as exc:
            # kazoo has already stopped the client; start() may be called again later.
            raise SourceUnavailable(
                f"zookeeper {self.hosts}: no connection within {self.timeout:g}s"
            ) from exc

    def stop(self) -> None:
        """Disconnect and release kazoo's threads and sockets."""
        self._client.stop()
        self._client.close()

    @property
    def connected(self) -> bool:
        """True while the session is connected (as last reported by the state listener)."""
        with self._state_lock:
            return self._state == KazooState.CONNECTED

    # -- plumbing ----------------------------------------------------------------------------

    def _path(self, kind: str, instance_id: int | None = None, child: str | None = None) -> str:
        return node_path(self.root, kind, instance_id, child)

    def _bounded(self, what: str, func: Callable[[float], T]) -> T:
        """Run `func(deadline)` with retries on transient errors, all within `timeout`.

        `func` receives an absolute monotonic deadline and must wait on async results with
        at most the time left (see `_wait`)."""
        with self._state_lock:
            since = self._state_since
            down = self._state != KazooState.CONNECTED
        if down and (self._gave_up_at == since or time.monotonic() - since > self.timeout):
            # A call already waited out this outage (or it is older than the timeout):
            # waiting again on every call would stall each tick for nothing. A short blip
            # still gets the retry below.
            raise SourceUnavailable(
                f"zookeeper {self.hosts}: {what}: disconnected for {time.monotonic() - since:.1f}s"
            )
        deadline = time.monotonic() + self.timeout
        retry = KazooRetry(max_tries=-1, delay=0.1, backoff=2, max_delay=1.0, deadline=self.timeout)

        def attempt() -> T:
            if not self._client.connected:
                # Queued requests would wait for the reconnect; let the retry loop poll
                # the state instead, and give up at the deadline.
                raise ConnectionLoss("not connected")
            return func(deadline)

        try:
            return retry(attempt)
        except _UNAVAILABLE as exc:
            with self._state_lock:
                if self._state != KazooState.CONNECTED:
                    self._gave_up_at = self._state_since
            raise SourceUnavailable(
                f"zookeeper {self.hosts}: {what}: {type(exc).__name__} {exc}".rstrip()
            ) from exc

    @staticmethod
    def _wait(result: IAsyncResult, deadline: float) -> Any:
        """Wait for an async result no later than `deadline`; time-outs become
        OperationTimeoutError so the retry loop treats them as transient."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise OperationTimeoutError("deadline passed")
        try:
            return result.get(timeout=remaining)
        except KazooTimeoutError as exc:
            raise OperationTimeoutError(f"no answer within {remaining:.1f}s") from exc

    def _commit(self, ops: Callable[[Any], list[str]], deadline: float, action: str) -> None:
        """Build a transaction with `ops` (which returns the path of each op, in order),
        commit it, and check every result."""
        tx = self._client.transaction()
        paths = ops(tx)
        results = self._wait(tx.commit_async(), deadline)
        failures = [
            (path, res)
            for path, res in zip(paths, results, strict=False)
            if isinstance(res, Exception)
        ]
        if failures:
            # The op that really failed carries its own error; the others only say they were
            # rolled back because of it. Connectivity errors go to the retry loop.
            real = [
                (p, e)
                for p, e in failures
                if not isinstance(e, RolledBackError | RuntimeInconsistency)
            ]
            path, error = (real or failures)[0]
            if isinstance(error, _UNAVAILABLE):
                raise error
            raise ZkTransactionError(path, error, action)
        if len(results) != len(paths):
            raise ZkTransactionError(
                paths[0] if paths else "?", RuntimeError("result count mismatch"), action
            )
        self.writes += 1

    # -- read --------------------------------------------------------------------------------

    def read(self, kind: str) -> Assignment:
        """The assignment of `kind`. A missing kind node is an empty assignment.

        Foreign (non-integer) children are ignored. An instance with a missing or malformed
        node comes back with `complete=False` (and whatever could be read), so the planner
        rewrites it instead of the whole tick failing."""
        return self._bounded(f"read {kind}", lambda deadline: self._read(kind, deadline))

    def _read(self, kind: str, deadline: float) -> Assignment:
        kind_path = self._path(kind)
        try:
            names = self._wait(self._client.get_children_async(kind_path), deadline)
        except NoNodeError:
            return {}
        ids: list[int] = []
        for name in names:
            instance_id = parse_instance_name(name)
            if instance_id is not None:
                ids.append(instance_id)
            else:
                log.warning("ignoring non-instance node %s/%s", kind_path, name)
        # Pipeline every request first, then collect: one round trip's latency for the
        # whole kind instead of one per node.
        pending = {
            i: (
                self._client.get_async(self._path(kind, i)),
                self._client.get_async(self._path(kind, i, "resources")),
                self._client.get_async(self._path(kind, i, "_reload")),
                self._client.exists_async(self._path(kind, i, "tmp")),
            )
            for i in sorted(ids)
        }
        assignment: Assignment = {}
        for i, (base, resources, reload_, tmp) in pending.items():
            instance = self._instance(kind, i, base, resources, reload_, tmp, deadline)
            if instance is not None:
                assignment[i] = instance
        return assignment

    def _instance(
        self,
        kind: str,
        instance_id: int,
        base: IAsyncResult,
        resources: IAsyncResult,
        reload_: IAsyncResult,
        tmp: IAsyncResult,
        deadline: float,
    ) -> Instance | None:
        try:
            head, _stat = self._wait(base, deadline)
        except NoNodeError:
            # Deleted between listing and reading: it is gone, not broken. (The other
            # requests complete on their own; nobody needs their answers.)
            return None
        instance, problems = decode_instance(
            instance_id,
            head,
            self._data(resources, deadline),
            self._data(reload_, deadline),
            tmp_exists=self._wait(tmp, deadline) is not None,
        )
        if problems:
            log.warning(
                "instance %s is incomplete: %s", self._path(kind, instance_id), "; ".join(problems)
            )
        return instance

    def _data(self, result: IAsyncResult, deadline: float) -> bytes | None:
        """The data of a node read with `get_async`; None if the node does not exist."""
        try:
            data, _stat = self._wait(result, deadline)
        except NoNodeError:
            return None
        return data

    # -- write -------------------------------------------------------------------------------

    def write_instance(self, kind: str, instance: Instance, *, create: bool) -> None:
        """Write every node of `instance` in one transaction.

        Stores exactly `instance.reload_times` (the planner bumps it). `create=True` also
        makes sure `<root>/<kind>` exists. Nodes that exist are set, missing ones created —
        in the same transaction — whatever `create` says, so a repair or a retry after a
        lost connection needs no special case."""
        base = self._path(kind, instance.instance_id)
        node, children = encode_instance(instance)

        def write(deadline: float) -> None:
            kind_path = self._path(kind)
            if create and self._wait(self._client.exists_async(kind_path), deadline) is None:
                self._wait(self._client.ensure_path_async(kind_path), deadline)
                self.writes += 1
            try:
                present = set(self._wait(self._client.get_children_async(base), deadline))
                base_exists = True
            except NoNodeError:
                present, base_exists = set(), False

            def ops(tx: Any) -> list[str]:
                paths: list[str] = []
                if base_exists:
                    tx.set_data(base, node)
                else:
                    tx.create(base, node)
                paths.append(base)
                for child, value in children.items():
                    path = f"{base}/{child}"
                    if child not in present:
                        tx.create(path, value or b"")
                    elif value is not None:
                        tx.set_data(path, value)
                    else:
                        continue  # tmp exists and carries no data: leave the workers' node
                    paths.append(path)
                return paths

            self._commit(ops, deadline, f"write {base}")

        self._bounded(f"write {base}", write)

    def delete_instance(self, kind: str, instance_id: int) -> None:
        """Delete the instance and everything under it in one transaction (workers may have
        added `tmp/status` and more). A missing instance is already deleted."""
        base = self._path(kind, instance_id)

        def delete(deadline: float) -> None:
            for _attempt in range(_DELETE_ATTEMPTS):
                try:
                    tree = self._tree(base, deadline)
                except NoNodeError:
                    return  # gone already (or vanished while we looked)

                def ops(tx: Any, tree: list[str] = tree) -> list[str]:
                    for path in tree:
                        tx.delete(path)
                    return tree

                try:
                    self._commit(ops, deadline, f"delete {base}")
                    return
                except ZkTransactionError as exc:
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
