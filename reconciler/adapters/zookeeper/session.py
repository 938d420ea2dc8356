"""A ZooKeeper session: connection state, bounded calls, checked and fenced transactions.

What the other modules here are composed from: `ZkReader` (read.py), `ZkStore` (store.py),
`CachedZkStore` (cache.py) and `ZkPins` (pins.py) each hold a session given to them, as
kazoo's recipes hold the client they are given; the leader election (election.py) runs on
the session's client, so its lock node lives and dies with this session.

- Every call is bounded. kazoo queues a request made while the client is reconnecting and
  sends it only once the connection is back, so a plain synchronous call can block for the
  whole outage. We fail fast when not connected and wait on async results with a timeout;
  `KazooRetry` covers short blips (ConnectionLoss) within the same bound. Whatever is left
  becomes `SourceUnavailable`, which the loop understands as "blind", not "empty".
- `transaction().commit()` reports failures as exception objects in its result list rather
  than raising: every result is inspected and the failing path is named.
- The connection-state listener only records state: calling ZooKeeper from inside it
  deadlocks kazoo's event thread.
- Fencing: a writer given a `Fence` (the leader election's, election.py) has every
  transaction also check the leader's lock node, so a deposed leader's writes fail
  atomically; without a fence to show, nothing is written (`NotLeader`). The fence is the
  writer's, not the session's: the election needs the session's client to exist first.
- Access (access.py): the client logs in with the daemon's digest identity, creates every
  node with its ACL, and speaks TLS when told. A refused read (NoAuth) is
  `SourceUnavailable`: the pass is blind instead of acting on what it could not read. A
  refused write is a failed transaction naming the node. Both name the settings to check,
  and both are retried, so an operator can fix the ACL or the password without a restart.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from kazoo.client import KazooClient, KazooState
from kazoo.exceptions import (
    AuthFailedError,
    ConnectionClosedError,
    ConnectionLoss,
    NoAuthError,
    OperationTimeoutError,
    RolledBackError,
    RuntimeInconsistency,
    SessionExpiredError,
)
from kazoo.handlers.threading import KazooTimeoutError
from kazoo.interfaces import IAsyncResult
from kazoo.retry import KazooRetry, RetryFailedError
from kazoo.security import ACL

from reconciler.adapters.zookeeper.access import ZkAccess
from reconciler.domain import call_limit
from reconciler.domain.errors import NotLeader, SourceUnavailable

# The logger name is part of the log format operators filter on: it does not follow the
# module when code moves (docs/architecture.md "Logs").
log = logging.getLogger("reconciler.adapters.zookeeper")

T = TypeVar("T")

# Leader election: the (path, version) every transaction must check, or None when this daemon
# does not lead (then nothing is written). A writer without a fence writes unfenced.
Fence = Callable[[], tuple[str, int] | None]

# Errors that mean "the server could not be reached or did not answer in time".
_UNAVAILABLE = (
    ConnectionLoss,
    ConnectionClosedError,
    OperationTimeoutError,
    SessionExpiredError,
    RetryFailedError,
    KazooTimeoutError,
)


class ZkTransactionError(Exception):
    """A ZooKeeper transaction was rejected (not a connectivity problem): names the path.

    Typically a race with another writer (NodeExists, NoNode), or a node whose ACL refuses
    our login (NoAuth; `hint` then names the settings to check). Nothing was written, since a
    multi is all-or-nothing; the loop retries the op on a later tick.
    """

    def __init__(self, path: str, error: BaseException, action: str, hint: str = "") -> None:
        self.path = path
        self.error = error
        super().__init__(f"{action}: {type(error).__name__} at {path}{': ' if hint else ''}{hint}")


class ZkSession:
    """A ZooKeeper session with bounded calls and checked, fenced transactions."""

    def __init__(
        self,
        hosts: str,
        *,
        root: str = "/iota/orchestration",
        timeout: float = 10.0,
        session_timeout: float = 10.0,
        access: ZkAccess | None = None,
    ) -> None:
        """`hosts` may carry a chroot ("host:port/chroot"); `timeout` bounds `start()` and
        every read or write, retries included; `access`: login, ACLs and TLS (default: none,
        nodes open to all)."""
        self.hosts = hosts
        self.access = access or ZkAccess()
        self.access.check()
        self.root = "/" + root.strip("/")
        self.timeout = timeout
        # Committed transactions + single writes; lets tests assert "a converged tick
        # writes nothing".
        self.writes = 0
        # Bytes of node data read (reconciler_zookeeper_read_bytes_total).
        self.bytes_read = 0
        self._state: str = KazooState.LOST
        self._state_since = time.monotonic()
        self._state_lock = threading.Lock()
        # `_state_since` of the outage a call already gave up on (see `bounded`).
        self._gave_up_at: float | None = None
        self._client = KazooClient(
            hosts=hosts,
            # The session timeout is also the leader's lease: a crashed leader's lock node
            # goes (and a standby takes over) within it, plus at most one server tick.
            timeout=session_timeout,
            # Reconnect forever, with a short cap on the backoff (`max_delay`): after an
            # outage the daemon should see ZooKeeper again within seconds, not after kazoo's
            # default cap of a minute.
            connection_retry=KazooRetry(max_tries=-1, delay=0.1, backoff=2, max_delay=2.0),
            **self.access.client_options(),
        )
        self._client.add_listener(self._on_state)

    @property
    def client(self) -> KazooClient:
        """The session, shared with the leader election (fencing needs the same session)."""
        return self._client

    def node_acl(self, path: str) -> list[ACL] | None:
        """The ACL to create the node at `path` (under `root`) with; None: the client's
        default (the daemon's ACL, or OPEN_ACL_UNSAFE without a login)."""
        if not self.access.secured or not path.startswith(self.root + "/"):
            return None
        parts = path[len(self.root) :].strip("/").split("/")
        return self.access.acl_for(parts)

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
        # Stopped during kazoo's first connect, its connection has no socket yet to wake
        # (AttributeError), but the client set its stop flag first and closes all the same.
        with contextlib.suppress(AttributeError):
            self._client.stop()
        self._client.close()

    @property
    def connected(self) -> bool:
        """True while the session is connected (as last reported by the state listener)."""
        with self._state_lock:
            return self._state == KazooState.CONNECTED

    def check_connected(self) -> bool:
        """A readiness check (/readyz): True while connected, else `SourceUnavailable`."""
        if not self.connected:
            raise SourceUnavailable(f"no ZooKeeper session ({self.hosts})")
        return True

    # -- plumbing ----------------------------------------------------------------------------

    def bounded(self, what: str, func: Callable[[float], T]) -> T:
        """Run `func(deadline)` with retries on transient errors, all within `timeout` (or
        what the pass making the call has left of its budget, if less:
        reconciler/domain/call_limit.py).

        `func` receives an absolute monotonic deadline and must wait on async results with
        at most the time left (see `wait`). It may run more than once: it must start
        afresh each time."""
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
        timeout = call_limit.bounded(self.timeout)
        deadline = time.monotonic() + timeout
        retry = KazooRetry(max_tries=-1, delay=0.1, backoff=2, max_delay=1.0, deadline=timeout)

        def attempt() -> T:
            if not self._client.connected:
                # Queued requests would wait for the reconnect; let the retry loop poll
                # the state instead, and give up at the deadline.
                raise ConnectionLoss("not connected")
            return func(deadline)

        try:
            return retry(attempt)
        except (NoAuthError, AuthFailedError) as exc:
            raise SourceUnavailable(
                f"zookeeper {self.hosts}: {what}: not allowed ({type(exc).__name__}): "
                f"{self._access_hint()}"
            ) from exc
        except _UNAVAILABLE as exc:
            with self._state_lock:
                if self._state != KazooState.CONNECTED:
                    self._gave_up_at = self._state_since
            raise SourceUnavailable(
                f"zookeeper {self.hosts}: {what}: {type(exc).__name__} {exc}".rstrip()
            ) from exc

    def _access_hint(self) -> str:
        if not self.access.secured:
            return "the nodes have ACLs: log in with RECONCILER_ZK_USERNAME/RECONCILER_ZK_PASSWORD"
        return (
            f"logged in as {self.access.username}: check RECONCILER_ZK_PASSWORD, and that the "
            "nodes' ACLs grant this identity ALL"
        )

    @staticmethod
    def wait(result: IAsyncResult, deadline: float) -> Any:
        """Wait for an async result no later than `deadline`; time-outs become
        OperationTimeoutError so the retry loop treats them as transient."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise OperationTimeoutError("deadline passed")
        try:
            return result.get(timeout=remaining)
        except KazooTimeoutError as exc:
            raise OperationTimeoutError(f"no answer within {remaining:.1f}s") from exc

    def commit(
        self,
        ops: Callable[[Any], list[str]],
        deadline: float,
        action: str,
        *,
        fence: Fence | None,
    ) -> list[Any]:
        """Build a transaction with `ops` (which returns the path of each op, in order),
        commit it, and check every result. Returns the results of `ops`' operations (a
        set_data's new stat, a create's path), the fence's check left out. `fence` is
        required so that no writer leaves it out by accident: None is an explicit
        "no election"."""
        tx = self._client.transaction()
        paths: list[str] = []
        if fence is not None:
            token = fence()
            if token is None:
                raise NotLeader(f"{action}: this daemon does not lead; nothing written")
            tx.check(*token)
            paths.append(token[0])
        paths += ops(tx)
        results = self.wait(tx.commit_async(), deadline)
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
            if fence is not None and path == paths[0]:
                raise NotLeader(f"{action}: fenced: the leader lock {path} is not ours any more")
            hint = self._access_hint() if isinstance(error, NoAuthError) else ""
            raise ZkTransactionError(path, error, action, hint)
        if len(results) != len(paths):
            raise ZkTransactionError(
                paths[0] if paths else "?", RuntimeError("result count mismatch"), action
            )
        self.writes += 1
        return list(results[1:] if fence is not None else results)
