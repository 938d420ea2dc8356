"""Kubernetes: the managed pods, their watch, their CPU/memory usage and the nodes' room.

The only module that talks to the apiserver (through the official `kubernetes` client).
Everything is returned as `reconciler.model` types; errors come out as:

- `SourceUnavailable`: connection refused/reset, timeouts, 429 and 5xx. The loop treats the
  pods as unknown ("blind") for this tick and changes nothing that depends on them.
- `PodStillTerminating`: a create hit the old pod of the same name still being deleted.
  Expected after a delete; the caller retries on a later tick, without logging an error.
- `MetricsUnavailable` (a `SourceUnavailable`): the metrics.k8s.io API is not served.
- `KubeError`: any other refusal (403, 422 ...): a real error to report, with the status.

Responses are read as JSON dicts (`_preload_content=False`) rather than the client's model
objects: deserialising V1Pod models costs milliseconds per pod, which a 100-pod list per
tick and a busy watch would pay for nothing.
"""

from __future__ import annotations

import json
import logging
import re
import socket
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import urllib3
from kubernetes import client, config
from kubernetes.client import ApiClient
from kubernetes.client.rest import ApiException
from kubernetes.watch.watch import iter_resp_lines
from urllib3.util.retry import Retry

from reconciler.adapters import SourceUnavailable
from reconciler.model import NodeCapacity, Pod, PodUsage
from reconciler.podspec import (
    INSTANCE_ID_LABEL,
    PodTemplate,
    managed_selector,
    parse_quantity,
    render_pod,
    spec_requests,
)
from reconciler.slowstart import SlowStartResult, batch_sizes, slow_start

__all__ = [
    "KubeError",
    "KubePods",
    "MetricsUnavailable",
    "PodStillTerminating",
    "PodWatcher",
    "SlowStartResult",
    "batch_sizes",
    "make_api_client",
    "pod_from_dict",
    "slow_start",
]

log = logging.getLogger(__name__)

METRICS_GROUP = "metrics.k8s.io"
METRICS_VERSION = "v1beta1"


class PodStillTerminating(Exception):
    """The pod name is taken by a pod that is being deleted; create it again later."""


class MetricsUnavailable(SourceUnavailable):
    """metrics.k8s.io is not served (no metrics-server, or its APIService is down)."""


class KubeError(Exception):
    """The apiserver refused a request for a reason a retry will not fix (4xx)."""

    def __init__(self, status: int, reason: str, message: str = "") -> None:
        super().__init__(f"{status} {reason}: {message}" if message else f"{status} {reason}")
        self.status = status
        self.reason = reason
        self.message = message


# --------------------------------------------------------------------------- client setup


def make_api_client(
    *,
    in_cluster: bool,
    kubeconfig: str | None,
    url: str | None,
    token: str | None,
    ca_file: str | None,
    verify_ssl: bool = True,
) -> ApiClient:
    """An ApiClient from the first credentials that apply (SPEC.md "Pods": credentials).

    In order: the pod's service account (`in_cluster`), an explicit URL + bearer token
    (IOTA_AUTH_TOKEN), else a kubeconfig file (the given path, else $KUBECONFIG or
    ~/.kube/config). The token is never logged: only the host and the source are.
    """
    cfg = client.Configuration()
    try:
        source = _configure(cfg, in_cluster, kubeconfig, url, token, ca_file, verify_ssl)
    except config.ConfigException as e:
        raise KubeConfigError(
            f"no usable Kubernetes credentials ({e}): set RECONCILER_KUBE_IN_CLUSTER=true in a "
            "pod, RECONCILER_KUBE_URL with IOTA_AUTH_TOKEN, or KUBECONFIG"
        ) from e
    # A refused connection is retried twice, quickly, then reported: the loop has its own
    # backoff, and a stopped apiserver must turn into SourceUnavailable in well under a
    # second, not after urllib3's default 3 retries of a long read. Reads are never retried
    # (a create that timed out may have happened; the next tick lists and sees).
    cfg.retries = Retry(total=2, connect=2, read=0, status=0, other=0, backoff_factor=0.1)
    log.info("kubernetes client: %s at %s", source, cfg.host)
    return ApiClient(cfg)


class KubeConfigError(ValueError):
    """The daemon was given no usable way to reach the apiserver (a configuration error)."""


def _configure(
    cfg: client.Configuration,
    in_cluster: bool,
    kubeconfig: str | None,
    url: str | None,
    token: str | None,
    ca_file: str | None,
    verify_ssl: bool,
) -> str:
    """Fill `cfg` from the first credentials that apply; returns their description."""
    if in_cluster:
        # Re-reads the projected token when it rotates (try_refresh_token is the default).
        config.load_incluster_config(client_configuration=cfg)
        source = "in-cluster service account"
    elif url:
        cfg.host = url.rstrip("/")
        if token:
            cfg.api_key = {"authorization": token}
            cfg.api_key_prefix = {"authorization": "Bearer"}
        if ca_file:
            cfg.ssl_ca_cert = ca_file
        cfg.verify_ssl = verify_ssl
        source = "url + token" if token else "url"
    else:
        config.load_kube_config(config_file=kubeconfig, client_configuration=cfg)
        if not verify_ssl:
            cfg.verify_ssl = False
        source = f"kubeconfig {kubeconfig or '(default)'}"
    return source


# --------------------------------------------------------------------------- conversions


def _parse_time(s: str | None) -> float | None:
    """RFC 3339 ("2024-05-01T12:00:00Z", maybe with fractions) -> Unix seconds."""
    if not s:
        return None
    try:
        return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _instance_id(labels: dict[str, str]) -> int | None:
    raw = labels.get(INSTANCE_ID_LABEL)
    if raw is None or not raw.isdigit():  # "-1", "x", "" are not instances of ours
        return None
    return int(raw)


def pod_from_dict(d: dict[str, Any]) -> Pod:
    """A pod as the API returns it (JSON) -> the model's Pod."""
    meta = d.get("metadata") or {}
    status = d.get("status") or {}
    return Pod(
        name=meta.get("name", ""),
        instance_id=_instance_id(meta.get("labels") or {}),
        # A pod the apiserver has just accepted has no status yet: that is Pending.
        phase=status.get("phase") or "Pending",
        terminating=meta.get("deletionTimestamp") is not None,
        started_at=_parse_time(status.get("startTime"))
        or _parse_time(meta.get("creationTimestamp")),
        uid=meta.get("uid", ""),
    )


_DURATION_RE = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_DURATION_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}


def parse_go_duration(s: str) -> float:
    """A Go time.Duration string ("30s", "1m0s", "10.5s", "500ms") -> seconds.

    metrics.k8s.io reports the averaging window this way.
    """
    s = s.strip()
    if s in ("0", ""):
        return 0.0
    pos, total = 0, 0.0
    for m in _DURATION_RE.finditer(s):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _DURATION_UNITS[m.group(2)]
        pos = m.end()
    if pos != len(s) or pos == 0:
        raise ValueError(f"invalid duration: {s!r}")
    return total


# --------------------------------------------------------------------------- error mapping

_TRANSIENT_HTTP = {429, 500, 502, 503, 504}


def _unavailable(what: str, e: BaseException, status: int = 0) -> SourceUnavailable:
    # Only the exception class and its text: urllib3's texts carry the URL, never headers.
    err = SourceUnavailable(f"kubernetes {what}: {type(e).__name__}: {e}")
    err.status = status  # type: ignore[attr-defined]  # 503 tells pod_usage the API is down
    return err


def _refusal(what: str, status: int, reason: str, body: bytes | str | None) -> Exception:
    """The exception for a non-2xx answer: transient ones make the source unavailable."""
    try:
        st = json.loads(body) if body else {}
    except (TypeError, ValueError):
        st = {}
    if not isinstance(st, dict):
        st = {}
    reason = str(st.get("reason") or reason or "")
    message = str(st.get("message") or "")
    err = KubeError(status, reason, message)
    if status == 0 or status in _TRANSIENT_HTTP:  # 0: TLS failure, no HTTP answer
        return _unavailable(what, err, status)
    return err


class _Api:
    """Calls the apiserver, returns parsed JSON, and maps failures to our exceptions."""

    def __init__(self, api_client: ApiClient, request_timeout: float) -> None:
        self.client = api_client
        self.core = client.CoreV1Api(api_client)
        self.custom = client.CustomObjectsApi(api_client)
        self.timeout = request_timeout

    def call(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """A generated client method (GETs: their arguments validate fine), as JSON."""
        kwargs.setdefault("_request_timeout", self.timeout)
        try:
            resp = fn(*args, _preload_content=False, **kwargs)
            data = resp.data
        except ApiException as e:
            raise _refusal(what, e.status or 0, str(e.reason or ""), e.body) from e
        except (urllib3.exceptions.HTTPError, OSError) as e:
            # MaxRetryError (refused), ReadTimeoutError, ProtocolError (reset) ...
            raise _unavailable(what, e) from e
        return json.loads(data) if data else None

    def send(self, what: str, method: str, path: str, body: dict[str, Any] | None) -> Any:
        """A write with a raw JSON body, as JSON.

        Not through the generated create/delete methods: client v37 validates bodies
        against its pydantic models and rejects any field it does not know, so a template
        using a field newer than the client would fail in Python, not in the apiserver
        (which is the authority on what a Pod may hold).
        """
        method_, url, headers, body_, _ = self.client.param_serialize(
            method,
            path,
            header_params={"Accept": "application/json", "Content-Type": "application/json"},
            body=body,
            auth_settings=["BearerToken"],
        )
        try:
            resp = self.client.call_api(method_, url, headers, body_, _request_timeout=self.timeout)
            data = resp.read()
        except ApiException as e:
            raise _refusal(what, e.status or 0, str(e.reason or ""), e.body) from e
        except (urllib3.exceptions.HTTPError, OSError) as e:
            raise _unavailable(what, e) from e
        if not 200 <= resp.status <= 299:
            raise _refusal(what, resp.status, str(resp.reason or ""), data)
        return json.loads(data) if data else None

    def list_all(
        self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> tuple[list[dict[str, Any]], str]:
        """All items of a list call, page by page; returns (items, the list's resourceVersion).

        Paged (limit 500) so a large namespace is not one huge response held by the server.
        """
        items: list[dict[str, Any]] = []
        cont: str | None = None
        while True:
            page = self.call(what, fn, *args, limit=500, _continue=cont, **kwargs) or {}
            items.extend(page.get("items") or [])
            meta = page.get("metadata") or {}
            cont = meta.get("continue")
            if not cont:
                return items, str(meta.get("resourceVersion") or "")


# --------------------------------------------------------------------------- pods


class KubePods:
    """Create, delete, recreate and list the pods this daemon manages, per resource kind."""

    def __init__(
        self,
        api_client: ApiClient,
        templates: dict[str, PodTemplate],
        *,
        request_timeout: float = 10,
    ) -> None:
        self._api = _Api(api_client, request_timeout)
        self.templates = templates
        self._writes = 0
        self._writes_lock = threading.Lock()

    # Writes sent to the apiserver (creates, deletes, patches), whatever their outcome: a
    # converged tick must make none, and the tests and bench read this to prove it.
    @property
    def writes(self) -> int:
        return self._writes

    def _count_write(self) -> None:
        with self._writes_lock:
            self._writes += 1

    def _template(self, kind: str) -> PodTemplate:
        try:
            return self.templates[kind]
        except KeyError:
            raise KeyError(f"no pod template for kind {kind!r}") from None

    def list_pods(self, kind: str) -> dict[str, Pod]:
        """Managed pods of one kind (by label, never by name), name -> Pod."""
        t = self._template(kind)
        items, _ = self._api.list_all(
            f"list pods {kind}",
            self._api.core.list_namespaced_pod,
            t.namespace,
            label_selector=managed_selector(kind),
        )
        return {p.name: p for p in map(pod_from_dict, items)}

    def get_pod(self, kind: str, name: str) -> Pod | None:
        t = self._template(kind)
        try:
            d = self._api.call(
                f"get pod {name}", self._api.core.read_namespaced_pod, name, t.namespace
            )
        except KubeError as e:
            if e.status == 404:
                return None
            raise
        return pod_from_dict(d)

    def create_pod(self, kind: str, instance_id: int) -> Pod:
        """Create the instance's pod from its template; returns the pod as it now exists.

        409 AlreadyExists is not an error when the existing pod is live (a previous create
        whose answer was lost, or a watch that lagged): that pod is returned, and the caller
        judges its phase as for any listed pod. When the name is held by a pod still being
        deleted, raises PodStillTerminating: the name frees up soon, retry on a later tick.
        """
        t = self._template(kind)
        body = render_pod(t, instance_id)
        name = body["metadata"]["name"]
        self._count_write()
        try:
            d = self._api.send(
                f"create pod {name}", "POST", f"/api/v1/namespaces/{t.namespace}/pods", body
            )
            return pod_from_dict(d)
        except KubeError as e:
            if e.status != 409:
                raise
        existing = self.get_pod(kind, name)
        if existing is None:  # deleted between our create and our get: free next time
            raise PodStillTerminating(f"pod {t.namespace}/{name} was just deleted; retry")
        if existing.terminating:
            raise PodStillTerminating(f"pod {t.namespace}/{name} is still terminating")
        return existing

    def delete_pod(
        self,
        kind: str,
        name: str,
        grace_seconds: int | None = None,
        *,
        uid: str | None = None,
    ) -> None:
        """Delete a pod; already gone (404) counts as done.

        With `uid`, only that incarnation is deleted (a precondition): a pod someone already
        recreated under the same name is left alone (the apiserver answers 409, also done).
        """
        t = self._template(kind)
        body: dict[str, Any] = {}
        if grace_seconds is not None:
            body["gracePeriodSeconds"] = grace_seconds
        if uid:
            body["preconditions"] = {"uid": uid}
        self._count_write()
        try:
            self._api.send(
                f"delete pod {name}",
                "DELETE",
                f"/api/v1/namespaces/{t.namespace}/pods/{name}",
                body or None,
            )
        except KubeError as e:
            if e.status == 404 or (e.status == 409 and uid):
                return
            raise

    def recreate_pod(
        self,
        kind: str,
        instance_id: int,
        name: str,
        wait_seconds: float = 5.0,
        *,
        uid: str | None = None,
        grace_seconds: int | None = None,
    ) -> bool:
        """Delete the pod, wait until its name is free, create it again.

        True when the new pod was created (or a live one already holds the name). False
        when the old pod is still terminating after `wait_seconds`: not an error, the
        delete is under way and the next tick creates the pod (it then finds it missing).
        A dead (Failed/Succeeded) pod is removed at once by the apiserver, so that case
        costs one round trip of waiting; a Running one waits for its grace period.
        """
        self.delete_pod(kind, name, grace_seconds, uid=uid)
        deadline = time.monotonic() + wait_seconds
        delay = 0.05
        while True:
            current = self.get_pod(kind, name)
            if current is None or (uid and current.uid != uid and not current.terminating):
                break
            if time.monotonic() >= deadline:
                log.info(
                    "pod %s still terminating after %.1fs; creating it on a later tick",
                    name,
                    wait_seconds,
                )
                return False
            time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
            delay = min(delay * 2, 0.5)
        try:
            self.create_pod(kind, instance_id)
        except PodStillTerminating:
            return False
        return True

    def create_pods(
        self, kind: str, instance_ids: Sequence[int], *, max_workers: int = 8
    ) -> SlowStartResult[Pod]:
        """Create many pods in slow-start batches (1, 2, 4, ...), stopping at a failure.

        PodStillTerminating is an expected answer, not a failing API: it does not stop the
        ramp and is reported in `failed` for the caller to retry later.
        """

        def one(iid: int) -> Callable[[], Pod | PodStillTerminating]:
            def run() -> Pod | PodStillTerminating:
                try:
                    return self.create_pod(kind, iid)
                except PodStillTerminating as e:
                    return e

            return run

        raw = slow_start([one(i) for i in instance_ids], max_workers=max_workers)
        out: SlowStartResult[Pod] = SlowStartResult(
            failed=list(raw.failed), skipped=list(raw.skipped)
        )
        for i, v in raw.succeeded:
            if isinstance(v, PodStillTerminating):
                out.failed.append((i, v))
            else:
                out.succeeded.append((i, v))
        return out

    # ----------------------------------------------------------------------- usage, nodes

    def pod_usage(self, kind: str) -> dict[str, PodUsage]:
        """CPU/memory of the kind's managed pods from metrics.k8s.io/v1beta1 PodMetrics.

        Pod name -> usage summed over containers. Raises MetricsUnavailable when the API
        is not served (404: no metrics-server; 503: its APIService is down), so the scaler
        can say "no metrics" instead of reading an empty dict as "no load".
        """
        t = self._template(kind)
        try:
            items, _ = self._api.list_all(
                f"pod metrics {kind}",
                self._api.custom.list_namespaced_custom_object,
                METRICS_GROUP,
                METRICS_VERSION,
                t.namespace,
                "pods",
                label_selector=managed_selector(kind),
            )
        except KubeError as e:
            if e.status == 404:
                raise MetricsUnavailable(
                    f"{METRICS_GROUP}/{METRICS_VERSION} is not served ({e})"
                ) from e
            raise
        except SourceUnavailable as e:
            if getattr(e, "status", 0) == 503:  # APIService registered, its backend down
                raise MetricsUnavailable(str(e)) from e
            raise
        out: dict[str, PodUsage] = {}
        for item in items:
            name = (item.get("metadata") or {}).get("name")
            if not name:
                continue
            try:
                out[name] = _usage_from_dict(item)
            except (ValueError, TypeError, KeyError) as e:
                log.warning("ignoring malformed PodMetrics %s/%s: %s", t.namespace, name, e)
        return out

    def check_reachable(self, timeout: float = 2.0) -> None:
        """A cheap apiserver round trip for /readyz (GET /version, any identity may read it).

        Raises `SourceUnavailable` (unreachable, 5xx) or `KubeError` saying what went wrong.
        """
        self._api.call(
            "apiserver /version",
            client.VersionApi(self._api.client).get_code,
            _request_timeout=timeout,
        )

    def node_capacity(self) -> list[NodeCapacity]:
        """Every node's allocatable CPU/memory and the requests of the pods bound to it."""
        nodes, _ = self._api.list_all("list nodes", self._api.core.list_node)
        # Terminated pods no longer hold their requests; the scheduler skips them too.
        pods, _ = self._api.list_all(
            "list bound pods",
            self._api.core.list_pod_for_all_namespaces,
            field_selector="spec.nodeName!=,status.phase!=Succeeded,status.phase!=Failed",
        )
        used: dict[str, list[float]] = {}
        for p in pods:
            spec = p.get("spec") or {}
            node = spec.get("nodeName")
            if not node:
                continue
            cpu, mem = spec_requests(spec)
            acc = used.setdefault(node, [0.0, 0.0])
            acc[0] += cpu
            acc[1] += mem
        out: list[NodeCapacity] = []
        for n in nodes:
            name = (n.get("metadata") or {}).get("name", "")
            status = n.get("status") or {}
            alloc = status.get("allocatable") or status.get("capacity") or {}
            cpu_m = float(parse_quantity(alloc.get("cpu", 0)) * 1000)
            mem_b = float(parse_quantity(alloc.get("memory", 0)))
            req = used.get(name, [0.0, 0.0])
            out.append(
                NodeCapacity(
                    name=name,
                    allocatable_cpu_m=cpu_m,
                    allocatable_mem_bytes=mem_b,
                    requested_cpu_m=req[0],
                    requested_mem_bytes=req[1],
                    schedulable=_schedulable(n),
                )
            )
        return out


def _usage_from_dict(item: dict[str, Any]) -> PodUsage:
    cpu = mem = 0.0
    for c in item.get("containers") or []:
        usage = c.get("usage") or {}
        cpu += float(parse_quantity(usage.get("cpu", 0)) * 1000)
        mem += float(parse_quantity(usage.get("memory", 0)))
    ts = _parse_time(item.get("timestamp"))
    if ts is None:
        raise ValueError(f"no valid timestamp: {item.get('timestamp')!r}")
    window = item.get("window")
    return PodUsage(
        cpu_millicores=cpu,
        memory_bytes=mem,
        timestamp=ts,
        window=parse_go_duration(window) if isinstance(window, str) else 0.0,
    )


def _schedulable(node: dict[str, Any]) -> bool:
    spec = node.get("spec") or {}
    if spec.get("unschedulable"):
        return False
    conditions = (node.get("status") or {}).get("conditions") or []
    if not any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions):
        return False
    # Our template pods carry no tolerations: a tainted node takes none of them.
    return not any(t.get("effect") in ("NoSchedule", "NoExecute") for t in spec.get("taints") or [])


# --------------------------------------------------------------------------- watch

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
        if was and not value:
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
        backoff = self._backoff_initial
        while not self._stop.is_set():
            try:
                if rv is None or time.monotonic() - listed_at > self._relist_seconds:
                    rv = self._relist(kind)
                    listed_at = time.monotonic()
                rv = self._watch_once(kind, t, rv)
                backoff = self._backoff_initial
            except _Gone:
                log.info("pod watch %s: resourceVersion expired (410); re-listing", kind)
                rv = None
            except Exception as e:
                if self._stop.is_set():
                    break
                self._set_healthy(kind, False)
                log.debug(
                    "pod watch %s: %s: %s; retry in %.1fs", kind, type(e).__name__, e, backoff
                )
                self._stop.wait(backoff)
                backoff = min(backoff * 2, self._backoff_max)
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
