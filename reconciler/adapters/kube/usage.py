"""Kubernetes: what the autoscaler reads, the pods' CPU/memory usage and the nodes' room.

`KubeUsage` is a mixin of `KubePods` (which provides `_api` and `_template`), so one object
serves the pods port and the metrics port: `pods.pod_usage(kind)`, `pods.node_capacity()`.
"""

from __future__ import annotations

import logging

from reconciler.adapters.kube.client import KubeError, MetricsUnavailable, _Api
from reconciler.adapters.kube.convert import _schedulable, _usage_from_dict
from reconciler.domain.errors import SourceUnavailable
from reconciler.domain.model import NodeCapacity, PodUsage
from reconciler.domain.podspec import PodTemplate, managed_selector, parse_quantity, spec_requests

log = logging.getLogger(__name__)

METRICS_GROUP = "metrics.k8s.io"
METRICS_VERSION = "v1beta1"


class KubeUsage:
    """`pod_usage` and `node_capacity`, for a class with an `_api` and a `_template(kind)`."""

    _api: _Api

    def _template(self, kind: str) -> PodTemplate:  # provided by KubePods
        raise NotImplementedError

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
