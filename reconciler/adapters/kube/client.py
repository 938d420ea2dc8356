"""Kubernetes: reaching the apiserver, and turning its failures into the ports' errors.

Builds the `ApiClient` from the configured credentials, and `_Api` wraps every call the
other modules make. Errors come out in the vocabulary of `reconciler.reconcile.ports`:

- `SourceUnavailable`: connection refused/reset, timeouts, 429 and 5xx. The loop treats the
  pods as unknown ("blind") for this pass and changes nothing that depends on them.
- `PodStillTerminating` (a `NotYet`): a create hit the old pod of the same name still being
  deleted. Expected after a delete; the caller retries on a later pass, without logging
  an error.
- `MetricsUnavailable` (a `SourceUnavailable`): the metrics.k8s.io API is not served.
- `KubeError` (a `Terminal`): any other refusal (403, 422 ...): a real error to report,
  with the status.

Responses are read as JSON dicts (`_preload_content=False`) rather than the client's model
objects: deserialising V1Pod models is costly per pod, a price every pod list and a busy
watch would pay for nothing.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import urllib3
from kubernetes import client, config
from kubernetes.client import ApiClient
from kubernetes.client.rest import ApiException
from urllib3.util.retry import Retry

from reconciler.domain import call_limit
from reconciler.domain.errors import NotYet, SourceUnavailable, Terminal

log = logging.getLogger(__name__)


class PodStillTerminating(NotYet):
    """The pod name is taken by a pod that is being deleted; create it again later."""


class MetricsUnavailable(SourceUnavailable):
    """metrics.k8s.io is not served (no metrics-server, or its APIService is down)."""


class KubeError(Terminal):
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
    """An ApiClient from the first credentials that apply (docs/contracts.md "Pods":
    credentials).

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
    # (a create that timed out may have happened; the next pass lists and sees).
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
        """A generated client method (GETs: their arguments validate fine), as JSON; within
        the request timeout, or what the pass reading has left of its budget if less."""
        kwargs.setdefault("_request_timeout", call_limit.bounded(self.timeout))
        try:
            resp = fn(*args, _preload_content=False, **kwargs)
            data = resp.data
        except ApiException as e:
            raise _refusal(what, e.status or 0, str(e.reason or ""), e.body) from e
        except (urllib3.exceptions.HTTPError, OSError) as e:
            # MaxRetryError (refused), ReadTimeoutError, ProtocolError (reset) ...
            raise _unavailable(what, e) from e
        return json.loads(data) if data else None

    def send(
        self,
        what: str,
        method: str,
        path: str,
        body: dict[str, Any] | None,
        content_type: str = "application/json",
    ) -> Any:
        """A write with a raw JSON body, as JSON.

        Not through the generated create/delete methods: client v37 validates bodies
        against its pydantic models and rejects any field it does not know, so a template
        using a field newer than the client would fail in Python, not in the apiserver
        (which is the authority on what a Pod may hold).
        """
        method_, url, headers, body_, _ = self.client.param_serialize(
            method,
            path,
            header_params={"Accept": "application/json", "Content-Type": content_type},
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
