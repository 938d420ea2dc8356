"""Kubernetes Events (events.k8s.io/v1) about the worker pods the daemon acts on.

`kubectl get events -n iota` then says why a pod was created, deleted or recreated, next to
what the scheduler and the kubelet say about it (docs/monitoring.md "Kubernetes Events"):

    LAST SEEN   TYPE      REASON       OBJECT                    MESSAGE
    1s          Warning   PodDead      pod/iota-dac-1            Thing instance 1: phase Failed; ...
    0s          Normal    ScaleDown    pod/iota-rules-engine-4   Rule scaled 5 -> 4 instances: ...

Like client-go's recorder (k8s.io/client-go/tools/events):

- **Aggregated.** Occurrences with the same regarding pod, reason, action and type within
  `window_seconds` (6 min, as client-go) are one Event: the first creates it, later ones
  update its `series` (`count`, `lastObservedTime`) with a merge patch. An occurrence after
  a quiet window starts a new Event.
- **Rate-limited per pod.** A token bucket per regarding pod (burst 25, one token per 300 s:
  client-go's spam filter) bounds the writes. An occurrence without a token is not lost: it
  is counted into its series, and the next write that gets a token carries the count.
- **Never in the caller's way.** `pod_event` only puts the occurrence on a bounded queue and
  returns; one background thread talks to the apiserver (`request_timeout` per call). Nothing
  raises into the caller: failures are logged at debug and counted (`counts`, and
  `reconciler_kube_events_total{result}`). A full queue drops the occurrence (counted).

Only events.k8s.io/v1 `create` and `patch` are called (deploy/kubernetes/rbac.yaml).
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from kubernetes.client import ApiClient
from prometheus_client import Counter

from reconciler.adapters.kube.client import KubeError, _Api
from reconciler.adapters.kube.event_series import (
    CONTROLLER,
    FIELD_LIMIT,
    NOTE_LIMIT,
    PodEvent,
    Series,
    TokenBucket,
    _clip,
    event_body,
    series_of,
)
from reconciler.domain.errors import SourceUnavailable
from reconciler.telemetry import metrics

log = logging.getLogger(__name__)

EVENTS_PATH = "/apis/events.k8s.io/v1/namespaces/{namespace}/events"

# Reasons the pipeline reports; a reason in WARNING_REASONS is a Warning unless told otherwise
# (a worker died or fell silent). Creating a missing pod or scaling down is Normal.
WARNING_REASONS = frozenset({"PodDead", "HeartbeatSilent"})

RESULTS = ("created", "patched", "aggregated", "rate_limited", "failed", "dropped")
EVENTS_TOTAL = Counter(
    "reconciler_kube_events_total",
    "Kubernetes Events about managed pods, by result: created, patched (series updated), "
    "aggregated (folded into an existing Event), rate_limited (write deferred), failed, "
    "dropped (queue full or cache overflow)",
    ["result"],
    registry=metrics.REGISTRY,
)
for _result in RESULTS:
    EVENTS_TOTAL.labels(_result)


class EventRecorder:
    """Posts events.k8s.io/v1 Events about pods; see the module's docstring.

    `pod_event(...)` is safe to call from any thread and returns at once. `close()` writes
    what is still due (within its timeout) and stops the background thread.
    """

    def __init__(
        self,
        api_client: ApiClient,
        identity: str,
        *,
        request_timeout: float = 5.0,
        window_seconds: float = 360.0,
        burst: int = 25,
        refill_seconds: float = 300.0,
        queue_size: int = 1000,
        max_series: int = 4096,
        max_tries: int = 3,
        idle_seconds: float = 1.0,
        wall: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.api_client = api_client
        self._api = _Api(api_client, request_timeout)
        self.identity = _clip(identity or CONTROLLER, FIELD_LIMIT)
        self.window = window_seconds
        self.burst = burst
        self.refill = refill_seconds
        self.max_series = max_series
        self.max_tries = max_tries
        self.idle = idle_seconds
        self.wall = wall
        self.monotonic = monotonic
        self._queue: queue.Queue[PodEvent | None] = queue.Queue(maxsize=queue_size)
        # Only the worker thread touches these two.
        self._series: dict[tuple[str, ...], Series] = {}
        self._buckets: dict[tuple[str, str], TokenBucket] = {}
        self._counts = dict.fromkeys(RESULTS, 0)
        self._counts_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._stopping = threading.Event()
        self._pending = 0  # occurrences queued and not yet handled by the worker
        self._pending_cond = threading.Condition()

    # ------------------------------------------------------------------ the caller's side

    def pod_event(
        self,
        kind: str,
        namespace: str,
        pod_name: str,
        action: str,
        reason: str,
        note: str,
        *,
        uid: str | None = None,
        event_type: str | None = None,
    ) -> None:
        """Record that the daemon did `action` to pod `namespace/pod_name` because of `reason`.

        Returns at once and never raises. `event_type` defaults to Warning for PodDead and
        HeartbeatSilent, Normal otherwise. `uid` pins the Event to that pod
        incarnation (`regarding.uid`; as in client-go, occurrences about different
        incarnations are then different Events); without it, occurrences about the pod's
        name aggregate, whichever incarnation they concern.
        """
        try:
            ev = PodEvent(
                kind=kind,
                namespace=namespace,
                pod=pod_name,
                action=_clip(action, FIELD_LIMIT),
                reason=_clip(reason, FIELD_LIMIT),
                note=_clip(note, NOTE_LIMIT),
                type=event_type or ("Warning" if reason in WARNING_REASONS else "Normal"),
                uid=uid,
                at=self.wall(),
                mono=self.monotonic(),
            )
            if self._stopping.is_set():
                self._count("dropped")
                return
            self._ensure_started()
            with self._pending_cond:
                self._queue.put_nowait(ev)
                self._pending += 1
        except queue.Full:
            self._count("dropped")
            log.debug("kube event dropped: queue full (%s %s/%s)", reason, namespace, pod_name)
        except Exception as e:  # never into the caller
            self._count("dropped")
            log.debug("kube event dropped: %s: %s", e.__class__.__name__, e)

    @property
    def counts(self) -> dict[str, int]:
        """created, patched, aggregated, rate_limited, failed, dropped (since start)."""
        with self._counts_lock:
            return dict(self._counts)

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """True once every queued occurrence is handled (and due writes tried): for tests."""
        with self._pending_cond:
            return self._pending_cond.wait_for(lambda: self._pending <= 0, timeout)

    def close(self, timeout: float = 5.0) -> None:
        """Write what is due (tokens permitting) and stop the thread."""
        self._stopping.set()
        thread = self._thread
        if thread is not None:
            with contextlib.suppress(queue.Full):
                self._queue.put_nowait(None)
            thread.join(timeout)

    # ------------------------------------------------------------------ the worker

    def _ensure_started(self) -> None:
        if self._thread is not None:
            return
        with self._start_lock:
            if self._thread is None:
                thread = threading.Thread(target=self._run, name="kube-events", daemon=True)
                thread.start()
                self._thread = thread

    def _run(self) -> None:
        stop = False
        while not stop:
            batch: list[PodEvent | None] = []
            # A burst becomes one write per series: take everything queued now.
            with contextlib.suppress(queue.Empty):
                batch.append(self._queue.get(timeout=self.idle))
                while True:
                    batch.append(self._queue.get_nowait())
            events = [ev for ev in batch if ev is not None]
            stop = self._stopping.is_set() and (len(events) < len(batch) or not batch)
            try:
                for ev in events:
                    self._observe(ev)
                self._flush()
                self._prune()
            except Exception:  # a bug here must not end event recording
                log.debug("kube events: worker error", exc_info=True)
            finally:
                with self._pending_cond:
                    self._pending -= len(events)
                    self._pending_cond.notify_all()

    def _observe(self, ev: PodEvent) -> None:
        series = self._series.get(ev.key)
        if series is not None and ev.mono - series.last_mono <= self.window:
            series.count += 1
            self._count("aggregated")
        else:
            series = Series(first=ev)
            old = self._series.pop(ev.key, None)  # re-insert: the dict stays oldest-first
            if old is not None and old.dirty and old.tries < self.max_tries:
                self._count("dropped")  # a whole quiet window without a token: unlikely
            self._series[ev.key] = series
        series.last_at = ev.at
        series.last_mono = ev.mono
        series.tries = 0

    def _flush(self) -> None:
        now = self.monotonic()
        for series in list(self._series.values()):
            if not series.dirty or series.tries >= self.max_tries:
                continue
            ev = series.first
            bucket = self._buckets.get((ev.namespace, ev.pod))
            if bucket is None:
                bucket = TokenBucket(self.burst, self.refill, now)
                self._buckets[(ev.namespace, ev.pod)] = bucket
            if not bucket.take(now):
                if not series.deferred:
                    self._count("rate_limited")  # once per deferred write
                    series.deferred = True
                continue
            series.deferred = False
            self._write(series)

    def _write(self, series: Series) -> None:
        ev = series.first
        count = series.count
        try:
            if series.name is None:
                self._create(series)
                self._count("created")
            else:
                try:
                    self._patch(series)
                    self._count("patched")
                except KubeError as e:
                    if e.status != 404:
                        raise
                    # Gone (the apiserver's event TTL, 1 h by default): a new Event.
                    self._create(series)
                    self._count("created")
        except Exception as e:
            series.tries += 1
            transient = isinstance(e, SourceUnavailable)
            if not transient:
                series.tries = self.max_tries  # a refusal is not retried
            self._count("failed")
            log.debug(
                "kube event not written (%s %s %s/%s, try %d): %s",
                ev.action,
                ev.reason,
                ev.namespace,
                ev.pod,
                series.tries,
                e,
            )
            return
        series.sent = count
        series.tries = 0

    def _create(self, series: Series) -> None:
        body = event_body(series, self.identity)
        ns = series.first.namespace
        made = self._send(
            "create event", "POST", EVENTS_PATH.format(namespace=ns), body, "application/json"
        )
        series.name = str((made or {}).get("metadata", {}).get("name") or body["metadata"]["name"])

    def _patch(self, series: Series) -> None:
        ns = series.first.namespace
        path = f"{EVENTS_PATH.format(namespace=ns)}/{series.name}"
        self._send(
            "patch event",
            "PATCH",
            path,
            {"series": series_of(series)},
            "application/merge-patch+json",
        )

    def _send(
        self, what: str, method: str, path: str, body: dict[str, Any], content_type: str
    ) -> Any:
        return self._api.send(what, method, path, body, content_type)

    def _prune(self) -> None:
        """Forget quiet series and full buckets; cap the cache (oldest first)."""
        now = self.monotonic()
        for key, series in list(self._series.items()):
            quiet = now - series.last_mono > self.window
            if quiet and (not series.dirty or series.tries >= self.max_tries):
                del self._series[key]
        while len(self._series) > self.max_series:
            key = next(iter(self._series))
            if self._series.pop(key).dirty:
                self._count("dropped")
        for key, bucket in list(self._buckets.items()):
            if bucket.full(now):
                del self._buckets[key]

    def _count(self, result: str) -> None:
        with self._counts_lock:
            self._counts[result] += 1
        EVENTS_TOTAL.labels(result).inc()
