"""A TEST STAND-IN for metrics-server's PodMetrics (metrics.k8s.io/v1beta1, plural pods).

Installs the CRD in `podmetrics_standin.yaml` on the rig's apiserver, so tests can write
PodMetrics objects and the daemon reads them through the same API path as in production.
Named a stand-in everywhere on purpose: it is not metrics-server and never goes to a real
cluster (see the YAML's header).
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client
from kubernetes.client import ApiClient
from kubernetes.client.rest import ApiException

CRD_PATH = Path(__file__).with_name("podmetrics_standin.yaml")
CRD_NAME = "pods.metrics.k8s.io"
GROUP, VERSION, PLURAL = "metrics.k8s.io", "v1beta1", "pods"


def crd_manifest() -> dict[str, Any]:
    return yaml.safe_load(CRD_PATH.read_text(encoding="utf-8"))


def _raw(api: ApiClient, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    # Raw JSON: the v37 client's pydantic models would re-validate (and may reject) the CRD.
    m, url, headers, b, _ = api.param_serialize(
        method,
        path,
        header_params={"Accept": "application/json", "Content-Type": "application/json"},
        body=body,
        auth_settings=["BearerToken"],
    )
    resp = api.call_api(m, url, headers, b, _request_timeout=10)
    data = resp.read()
    try:
        return resp.status, (json.loads(data) if data else None)
    except ValueError:  # an unknown path answers "404 page not found" as plain text
        return resp.status, data


def _served(api: ApiClient) -> bool:
    status, _ = _raw(api, "GET", f"/apis/{GROUP}/{VERSION}/{PLURAL}?limit=1")
    return status == 200


def install(api: ApiClient, timeout: float = 30.0) -> None:
    """Create the stand-in CRD (idempotent) and wait until its API path serves lists."""
    status, body = _raw(
        api, "POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd_manifest()
    )
    if status not in (201, 409):
        raise RuntimeError(f"installing the PodMetrics stand-in CRD: {status} {body}")
    deadline = time.monotonic() + timeout
    while not _served(api):
        if time.monotonic() > deadline:
            raise TimeoutError(f"PodMetrics stand-in CRD not served after {timeout:.0f}s")
        time.sleep(0.2)


def uninstall(api: ApiClient, timeout: float = 30.0) -> None:
    """Delete the stand-in CRD and wait until metrics.k8s.io answers 404 again."""
    status, body = _raw(
        api, "DELETE", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{CRD_NAME}"
    )
    if status not in (200, 202, 404):
        raise RuntimeError(f"deleting the PodMetrics stand-in CRD: {status} {body}")
    deadline = time.monotonic() + timeout
    while True:
        status, _ = _raw(api, "GET", f"/apis/{GROUP}/{VERSION}/{PLURAL}?limit=1")
        if status == 404:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"PodMetrics stand-in CRD still served after {timeout:.0f}s")
        time.sleep(0.2)


def put_pod_metrics(
    api: ApiClient,
    namespace: str,
    pod_name: str,
    containers: dict[str, tuple[str, str]],
    *,
    labels: dict[str, str] | None = None,
    timestamp: float | None = None,
    window: str = "30s",
) -> None:
    """Create or replace the PodMetrics of one pod: containers = {name: (cpu, memory)}.

    Like metrics-server, the object carries the pod's name and labels, so a label
    selector finds the same objects it finds among pods.
    """
    ts = datetime.fromtimestamp(timestamp if timestamp is not None else time.time(), UTC)
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "PodMetrics",
        "metadata": {"name": pod_name, "namespace": namespace, "labels": labels or {}},
        "timestamp": ts.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "window": window,
        "containers": [
            {"name": n, "usage": {"cpu": cpu, "memory": mem}}
            for n, (cpu, mem) in containers.items()
        ],
    }
    custom = client.CustomObjectsApi(api)
    try:
        custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, pod_name)
    except ApiException as e:
        if e.status != 404:
            raise
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)
