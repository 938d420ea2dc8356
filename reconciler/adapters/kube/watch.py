"""Kubernetes: follow the managed pods of each kind with a watch, and keep a cache of them.

The reflector pattern of client-go (list, then watch from the list's resourceVersion) on
one daemon thread per kind; `PodWatcher.pods(kind)` is the cache a pass reads instead of
listing, and `on_change` wakes the loop when something changed.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from kubernetes.client import ApiClient
from kubernetes.client.rest import ApiException
from kubernetes.watch.watch import iter_resp_lines

from reconciler.adapters.kube.client import KubeError, _Api
from reconciler.adapters.kube.convert import pod_from_dict
from reconciler.domain.backoff import Backoff
from reconciler.domain.model import Pod
from reconciler.domain.podspec import PodTemplate, managed_selector

log = logging.getLogger(__name__)

OnChange = Callable[[str, Pod | None, str], None]


class PodWatcher:
    """Follows the managed pods of each kind and calls `on_change` for every change.

    One daemon thread per kind runs the reflector pattern of client-go: list (remembering
    every pod, and reporting pods that vanished while we were not watching as DELETED),
    then watch from the list's resourceVersion. The watch carries a server timeout
    (`timeoutSeconds`) and a client read timeout, because a watch without them can go
    silently idle forever on a half-open connection. A clean server-side close resumes
    from the last resourceVersion; 410 Gone (history compacted) re-lists; errors reconnect
    with capped exponential backoff. A full re-list also happens every `relist_seconds`
    as a safety net against missed events.

    `on_change(kind, pod, event_type)`: event_type is ADDED, MODIFIED or DELETED (pod is
    None for DELETED). It runs on the watch thread: keep it short (hand off to a queue).
    """

    def __init__(
        self,
        api_client: ApiClient,
        templates: dict[str, PodTemplate],
        on_change: OnChange,
        *,
        server_timeout: int = 60,
        request_timeout: float = 10,
        backoff_initial: float = 0.2,
        backoff_max: float = 10.0,
        relist_seconds: float = 300.0,
    ) -> None:
        self._api = _Api(api_client, request_timeout)
        self._templates = templates
        self._on_change = on_change
        self._server_timeout = server_timeout
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self._relist_seconds = relist_seconds
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._healthy: dict[str, bool] = dict.fromkeys(templates, False)
        self._cache: dict[str, dict[str, Pod] | None] = dict.fromkeys(templates)
        # kind -> name -> uid of the last incarnation seen deleted: a pod created and deleted
        # between two looks at the cache is never in it (state/expectations.py).
        self._gone: dict[str, dict[str, str]] = {kind: {} for kind in templates}
        self._resp: dict[str, Any] = {}
        self.lists = 0  # number of full lists done (initial, 410, periodic): for tests/metrics
        self.reconnects = 0

    @property
    def healthy(self) -> bool:
        """True while every kind's watch stream is established."""
        with self._lock:
            return bool(self._healthy) and all(self._healthy.values())

    def kind_healthy(self, kind: str) -> bool:
        with self._lock:
            return self._healthy.get(kind, False)

    def pods(self, kind: str) -> dict[str, Pod] | None:
        """The watcher's current view of a kind's pods; None before the first list."""
        with self._lock:
            cache = self._cache.get(kind)
            return dict(cache) if cache is not None else None

    def gone(self, kind: str) -> dict[str, str]:
        """Name -> uid of the last incarnation of each of the kind's pods seen deleted."""
        with self._lock:
            return dict(self._gone.get(kind, {}))

    def start(self) -> None:
        self._stop.clear()
        for kind in self._templates:
            th = threading.Thread(
                target=self._run, args=(kind,), name=f"pod-watch-{kind}", daemon=True
            )
            th.start()
            self._threads.append(th)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop every watch and join the threads; returns within about `timeout`."""
        self._stop.set()
        with self._lock:
            resps = list(self._resp.values())
        for resp in resps:
            _abort(resp)
        deadline = time.monotonic() + timeout
        for th in self._threads:
            th.join(max(0.0, deadline - time.monotonic()))
        self._threads = [th for th in self._threads if th.is_alive()]

    # ----------------------------------------------------------------------- internals

    def _set_healthy(self, kind: str, value: bool) -> None:
        with self._lock:
            was = self._healthy.get(kind)
            self._healthy[kind] = value
        if was and not value and not self._stop.is_set():  # a clean stop is not a loss
            log.warning("pod watch %s: stream lost; reconnecting", kind)
        elif value and not was:
            log.info("pod watch %s: stream established", kind)

    def _emit(self, kind: str, pod: Pod | None, event: str) -> None:
        try:
            self._on_change(kind, pod, event)
        except Exception:  # a bad callback must not end the watch
            log.exception("pod watch %s: on_change failed", kind)

    def _relist(self, kind: str) -> str:
        t = self._templates[kind]
        items, rv = self._api.list_all(
            f"list pods {kind}",
            self._api.core.list_namespaced_pod,
            t.namespace,
            label_selector=managed_selector(kind),
        )
        fresh = {p.name: p for p in map(pod_from_dict, items)}
        with self._lock:
            old = self._cache.get(kind) or {}
            self._cache[kind] = fresh
            self.lists += 1
            gone = self._gone.setdefault(kind, {})
            gone.update((name, old[name].uid) for name in old.keys() - fresh.keys())
        for name, pod in fresh.items():
            before = old.get(name)
            if before is None:
                self._emit(kind, pod, "ADDED")
            elif before != pod:
                self._emit(kind, pod, "MODIFIED")
        for _gone in old.keys() - fresh.keys():  # deleted while we were not watching
            self._emit(kind, None, "DELETED")
        return rv

    def _run(self, kind: str) -> None:
        t = self._templates[kind]
        rv: str | None = None
        listed_at = 0.0
        backoff = Backoff(self._backoff_initial, self._backoff_max)
        while not self._stop.is_set():
            try:
                if rv is None or time.monotonic() - listed_at > self._relist_seconds:
                    rv = self._relist(kind)
                    listed_at = time.monotonic()
                rv = self._watch_once(kind, t, rv)
                backoff.succeeded()
            except _Gone:
                log.info("pod watch %s: resourceVersion expired (410); re-listing", kind)
                rv = None
            except Exception as e:
                if self._stop.is_set():
                    break
                self._set_healthy(kind, False)
                delay = backoff.failed(time.monotonic())
                log.debug("pod watch %s: %s: %s; retry in %.1fs", kind, type(e).__name__, e, delay)
                self._stop.wait(delay)
                self.reconnects += 1
        self._set_healthy(kind, False)

    def _watch_once(self, kind: str, t: PodTemplate, rv: str) -> str | None:
        """One watch request from `rv`; returns the resourceVersion to resume from."""
        try:
            resp = self._api.core.list_namespaced_pod(
                t.namespace,
                label_selector=managed_selector(kind),
                watch=True,
                resource_version=rv,
                allow_watch_bookmarks=True,
                timeout_seconds=self._server_timeout,
                _preload_content=False,
                # read timeout past the server's own close: only a dead connection hits it
                _request_timeout=(self._api.timeout, self._server_timeout + 15),
            )
        except ApiException as e:
            if e.status == 410:
                raise _Gone from e
            raise
        with self._lock:
            self._resp[kind] = resp
        try:
            if self._stop.is_set():
                return rv
            self._set_healthy(kind, True)
            for line in iter_resp_lines(resp):
                if self._stop.is_set():
                    break
                if not line.strip():
                    continue
                ev = json.loads(line)
                etype = ev.get("type")
                obj = ev.get("object") or {}
                if etype == "ERROR":
                    if obj.get("code") == 410:
                        raise _Gone
                    raise KubeError(
                        int(obj.get("code") or 0),
                        str(obj.get("reason", "")),
                        str(obj.get("message", "")),
                    )
                new_rv = (obj.get("metadata") or {}).get("resourceVersion")
                if new_rv:
                    rv = new_rv
                if etype == "BOOKMARK":
                    continue
                pod = pod_from_dict(obj)
                with self._lock:
                    cache = self._cache.setdefault(kind, {})
                    if cache is None:
                        cache = self._cache[kind] = {}
                    if etype == "DELETED":
                        cache.pop(pod.name, None)
                        self._gone.setdefault(kind, {})[pod.name] = pod.uid
                    else:
                        cache[pod.name] = pod
                self._emit(kind, None if etype == "DELETED" else pod, str(etype))
            return rv
        finally:
            with self._lock:
                self._resp.pop(kind, None)
            resp.close()
            resp.release_conn()


class _Gone(Exception):
    """The watch's resourceVersion is too old (410): list again."""


def _abort(resp: Any) -> None:
    """Unblock a thread reading a watch response now, not at the next event or timeout.

    Shutting the socket down makes the blocked recv return; close() alone may wait for
    the SSL lock the reader holds (the client's own Watch.stop does the same).
    """
    try:
        sock = getattr(getattr(resp, "connection", None), "sock", None)
        if sock is not None:
            sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


class PodWatch:
    """The pod watch of the policy in force: a `PodWatcher` over the current templates'
    kinds and namespaces, replaced whenever a policy load brings new ones (`follow`).

    Also the pass's pod cache: it answers for a kind only while that kind's stream is
    established, since a lost stream may be missing changes (the pass then lists)."""

    def __init__(self, api_client: ApiClient, on_change: OnChange) -> None:
        self._api_client = api_client
        self._on_change = on_change
        self._lock = threading.Lock()
        self._templates: dict[str, PodTemplate] | None = None
        self._watcher: PodWatcher | None = None
        self._started = False

    def follow(self, templates: dict[str, PodTemplate]) -> None:
        """Watch the pods of `templates` from now on (once started: a policy can be loaded
        before anything may hear of its pods)."""
        with self._lock:
            self._templates = templates
            if self._started:
                self._replace_watcher()

    def start(self) -> None:
        with self._lock:
            self._started = True
            if self._templates is not None:
                self._replace_watcher()

    def stop(self) -> None:
        with self._lock:
            self._started = False
            watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.stop()

    def _replace_watcher(self) -> None:
        assert self._templates is not None
        if self._watcher is not None:
            self._watcher.stop()
        self._watcher = PodWatcher(self._api_client, self._templates, self._on_change)
        self._watcher.start()

    def pods(self, kind: str) -> dict[str, Pod] | None:
        watcher = self._watcher
        if watcher is None or not watcher.kind_healthy(kind):
            return None
        return watcher.pods(kind)

    def gone(self, kind: str) -> dict[str, str]:
        watcher = self._watcher
        return watcher.gone(kind) if watcher is not None else {}
