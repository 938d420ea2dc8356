"""Kubernetes: the managed pods, their watch, their CPU/memory usage and the nodes' room.

The only package that talks to the apiserver (through the official `kubernetes` client).
Everything is returned as `reconciler.domain.model` types, and errors come out in the vocabulary
of `reconciler.reconcile.ports` (see `client`). One job per module:

- `client`: the ApiClient from the credentials, calls, and the mapping of failures to errors.
- `convert`: the API's JSON -> `reconciler.domain.model` types (pure, no network).
- `pods`: `KubePods`, create/delete/list of the managed pods (level-triggered).
- `usage`: pod CPU/memory from metrics.k8s.io and the nodes' room (methods of `KubePods`).
- `watch`: `PodWatcher`, list + watch per kind, with a cache of each kind's pods.

This module only re-exports their names, so `from reconciler.adapters.kube import ...`
keeps working as it did when all of this was one module.
"""

from reconciler.adapters.kube.client import (
    KubeConfigError,
    KubeError,
    MetricsUnavailable,
    PodStillTerminating,
    make_api_client,
)
from reconciler.adapters.kube.convert import (
    _schedulable,
    _usage_from_dict,
    parse_go_duration,
    pod_from_dict,
)
from reconciler.adapters.kube.pods import KubePods
from reconciler.adapters.kube.usage import METRICS_GROUP, METRICS_VERSION, KubeUsage
from reconciler.adapters.kube.watch import OnChange, PodWatcher

__all__ = [
    "METRICS_GROUP",
    "METRICS_VERSION",
    "KubeConfigError",
    "KubeError",
    "KubePods",
    "KubeUsage",
    "MetricsUnavailable",
    "OnChange",
    "PodStillTerminating",
    "PodWatcher",
    "_schedulable",
    "_usage_from_dict",
    "make_api_client",
    "parse_go_duration",
    "pod_from_dict",
]
