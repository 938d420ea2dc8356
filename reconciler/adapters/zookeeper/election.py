"""Leader election on ZooKeeper, with a fencing token and proof of leadership.

Every daemon contends with kazoo's Lock recipe under `<root>/_leader`: each holds an
ephemeral sequential node carrying its identity, and the lowest one leads. Only the leader
writes; the others stay warm as standbys (they observe, they never apply). The node's data is
the daemon's candidacy (`Candidacy`): its identity and, when it has one, the URL of its REST
API, so a standby can forward a write to whoever leads. Both are written with the node itself:
the address is published exactly as long as the candidacy stands, with no write of its own.

Why it is shaped this way (Kafka's controller epoch, KAFKA-6082; client-go's leaderelection):
- Fencing: the leader's lock node is its token. Every ZooKeeper transaction the leader
  commits carries `check(<our lock node>, version 0)`, so once the session that owns the node
  is gone (expired while the process was paused, say), the write fails atomically on the
  server, whatever the paused process still believes.
- Kubernetes cannot check a ZooKeeper node, so pod writes are gated by a *proof*: a round trip
  that found our node under a connected session, no older than `proof_seconds` (well under
  the session timeout). A process resumed after a long pause holds a stale proof and must
  prove again before any pod call; a SUSPENDED or LOST connection revokes leadership at once.
- The connection-state listener only records what happened and wakes the campaign thread:
  calling ZooKeeper from inside it deadlocks kazoo's event thread.
- `release()` deletes the node (SIGTERM), so a standby takes over at once rather than after
  the session timeout.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from kazoo.client import KazooClient, KazooState
from kazoo.exceptions import CancelledError, KazooException, NoNodeError
from kazoo.handlers.threading import KazooTimeoutError
from kazoo.recipe.lock import Lock

from reconciler.domain.backoff import Backoff
from reconciler.telemetry.logs import log

LEADER_NODE = "_leader"
_API_URL = re.compile(r"https?://[^/?#@\s]+")


@dataclass(frozen=True)
class Candidacy:
    """What a contender's lock node says: who it is, and where its REST API is (None: it
    publishes none, or it is a daemon from before addresses were published)."""

    identity: str
    api_url: str | None = None

    def encode(self) -> str:
        """The lock node's data. Without an address, the bare identity, as before: a daemon
        of an older release reads its peers' identities from it during a rolling update."""
        if self.api_url is None:
            return self.identity
        return json.dumps({"identity": self.identity, "api": self.api_url}, separators=(",", ":"))


def parse_candidacy(data: bytes) -> Candidacy | None:
    """A lock node's data: `{"identity": ..., "api": ...}`, or a bare identity (plain text,
    an older daemon's). None for an empty node. An address that is not an http(s) URL is
    dropped: nothing is ever forwarded to it."""
    text = data.decode("utf-8", errors="replace")
    if not text:
        return None
    if text.startswith("{"):
        try:
            fields = json.loads(text)
        except ValueError:
            fields = None
        identity = fields.get("identity") if isinstance(fields, dict) else None
        if isinstance(identity, str) and identity:
            api = fields.get("api") if isinstance(fields, dict) else None
            valid = isinstance(api, str) and _API_URL.fullmatch(api) is not None
            return Candidacy(identity, api if valid else None)
    return Candidacy(text)


class ZkElection:
    """One daemon's candidacy. `on_change()` is called (from any thread; keep it short) when
    this daemon gains or loses leadership, or its connection changes."""

    def __init__(
        self,
        client: KazooClient,
        root: str,
        identity: str,
        on_change: Callable[[], None] = lambda: None,
        *,
        group: str = "",
        api_url: str | None = None,
        proof_seconds: float = 3.0,
        mono: Callable[[], float] = time.monotonic,
    ) -> None:
        """`api_url`: where the other daemons reach this one's REST API, published with the
        candidacy (None: publish none; a standby cannot forward writes to us then)."""
        self.client = client
        # One election per daemon group: groups that orchestrate different kinds each elect
        # a leader of their own (docs/high-availability.md).
        node = f"{LEADER_NODE}-{group}" if group else LEADER_NODE
        self.path = f"{root.rstrip('/')}/{node}"
        self.identity = identity
        self.candidacy = Candidacy(identity, api_url)
        self.on_change = on_change
        self.proof_seconds = proof_seconds
        self.mono = mono
        self.transitions = 0  # times this daemon became leader or stopped being it
        self._lock = threading.Lock()
        self._node: str | None = None  # full path of our lock node while we lead
        self._connected = False
        self._proven_at = -float("inf")
        self._recipe: Lock | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._leader_cache: tuple[float, Candidacy | None] = (-float("inf"), None)
        client.add_listener(self._on_state)

    # --- what the loop, the adapters and status ask ------------------------------------------

    @property
    def is_leader(self) -> bool:
        """We hold the lock node and the connection is up (no round trip)."""
        with self._lock:
            return self._node is not None and self._connected

    def fence(self) -> tuple[str, int] | None:
        """The check every leader transaction carries, or None when we do not lead."""
        with self._lock:
            if self._node is None or not self._connected:
                return None
            return self._node, 0  # an ephemeral lock node is never modified: version 0

    def prove(self, timeout: float = 2.0) -> bool:
        """True if a round trip just now found our lock node under a connected session."""
        fence = self.fence()
        if fence is None:
            return False
        try:
            stat = self.client.exists_async(fence[0]).get(timeout=timeout)
        except (KazooException, KazooTimeoutError, OSError) as e:
            log.info("leadership not proven", identity=self.identity, error=str(e))
            return False
        if stat is None or stat.owner_session_id != self.client.client_id[0]:
            self._lost("our lock node is gone")
            return False
        with self._lock:
            if self._node == fence[0]:
                self._proven_at = self.mono()
        return True

    def may_act(self) -> bool:
        """Gate for writes ZooKeeper cannot fence (Kubernetes): leader with a fresh proof."""
        if not self.is_leader:
            return False
        with self._lock:
            fresh = self.mono() - self._proven_at < self.proof_seconds
        return fresh or self.prove()

    def leader(self) -> str | None:
        """The identity of the current leader (cached for a second; None if unknown)."""
        current = self._leading_candidacy()
        return current.identity if current is not None else None

    def leader_url(self) -> str | None:
        """The URL of the current leader's REST API (cached with `leader()`; None if the
        leader is unknown or publishes no address)."""
        current = self._leading_candidacy()
        return current.api_url if current is not None else None

    def _leading_candidacy(self) -> Candidacy | None:
        at, who = self._leader_cache
        if self.mono() - at < 1.0:
            return who
        if self.is_leader:
            who = self.candidacy
        elif not self.client.connected:
            who = None  # a request would wait for the reconnect: unknown, at once
        else:
            try:
                who = self._lowest_contender(timeout=1.0)
            except (KazooException, KazooTimeoutError, OSError):
                who = None
        self._leader_cache = (self.mono(), who)
        return who

    def _lowest_contender(self, timeout: float) -> Candidacy | None:
        """The candidacy in the lowest-sequence lock node (what Lock.contenders()[0] says,
        bounded by `timeout`)."""
        children = self.client.get_children_async(self.path).get(timeout=timeout)
        nodes = sorted(
            (c for c in children if "__lock__" in c), key=lambda c: c.rsplit("__lock__", 1)[1]
        )
        for node in nodes:
            try:
                data, _ = self.client.get_async(f"{self.path}/{node}").get(timeout=timeout)
            except NoNodeError:
                continue  # gone between the listing and the read
            return parse_candidacy(data)
        return None

    # --- campaign ----------------------------------------------------------------------------

    def start(self) -> None:
        self._connected = self.client.state == KazooState.CONNECTED
        self._thread = threading.Thread(target=self._campaign, name="leader-election", daemon=True)
        self._thread.start()

    def release(self, timeout: float = 5.0) -> None:
        """Stop contending; if we lead, delete our node so a standby takes over at once."""
        self._stop.set()
        self._wake.set()
        recipe = self._recipe
        if recipe is not None:
            recipe.cancel()
        if self._thread is not None:
            self._thread.join(timeout)

    def _campaign(self) -> None:
        backoff = Backoff(0.2, 5.0)
        while not self._stop.is_set():
            if not self.client.connected:
                self._wake.wait(0.2)
                self._wake.clear()
                continue
            recipe = Lock(self.client, self.path, self.candidacy.encode())
            self._recipe = recipe
            try:
                got = recipe.acquire(blocking=True)
            except CancelledError:
                self._cleanup(recipe)
                break
            except (KazooException, KazooTimeoutError, OSError) as e:
                self._cleanup(recipe)
                delay = backoff.failed(time.monotonic())
                # kazoo's errors often carry no text (NoAuthError: the lock node's ACL
                # refuses our login): the type is the news.
                log.info(
                    "leader election failed",
                    identity=self.identity,
                    error=f"{type(e).__name__} {e}".strip(),
                    retry_in=delay,
                )
                self._stop.wait(delay)
                continue
            if not got or recipe.node is None:
                self._cleanup(recipe)
                continue
            backoff.succeeded()
            self._won(f"{self.path}/{recipe.node}")
            self._hold()
            if self._stop.is_set():
                self._cleanup(recipe)
                self._lost("released")
                break

    def _hold(self) -> None:
        """Wait while we lead: until released or the session is lost."""
        while not self._stop.is_set():
            self._wake.wait(1.0)
            self._wake.clear()
            with self._lock:
                if self._node is None:
                    return

    def _won(self, node: str) -> None:
        with self._lock:
            self._node = node
            self._proven_at = self.mono()
            self.transitions += 1
        self._leader_cache = (-float("inf"), None)
        log.info("leadership acquired", identity=self.identity, node=node)
        self.on_change()

    def _lost(self, why: str) -> None:
        with self._lock:
            had = self._node is not None
            self._node = None
            self._proven_at = -float("inf")
            if had:
                self.transitions += 1
        self._leader_cache = (-float("inf"), None)
        self._wake.set()
        if had:
            # Handing over on a clean stop is expected; losing it otherwise is worth a warning.
            (log.info if why == "released" else log.warning)(
                "leadership lost", identity=self.identity, why=why
            )
            self.on_change()

    def _cleanup(self, recipe: Lock) -> None:
        """Delete our node if it is still there (a release, or a campaign that failed)."""
        # A failure means the session is gone: the server removes the ephemeral node itself.
        with contextlib.suppress(KazooException, KazooTimeoutError, OSError):
            recipe.release()

    def _on_state(self, state: str) -> None:
        """kazoo's event thread: record, wake the campaign, never call ZooKeeper here."""
        with self._lock:
            self._connected = state == KazooState.CONNECTED
        if state == KazooState.LOST:
            # The session expired: its ephemeral lock node is gone with it.
            threading.Thread(target=self._lost, args=("session lost",), daemon=True).start()
        self._wake.set()
        threading.Thread(target=self.on_change, daemon=True).start()
