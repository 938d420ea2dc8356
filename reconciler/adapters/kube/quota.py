"""Kubernetes: the namespace's ResourceQuotas, as the room they leave (`QuotaRoom`).

`KubeQuota` is a mixin of `KubePods` (which provides `_api`), like `KubeUsage`: one object
serves the pods port, the metrics port and the quota read, `pods.quota_room(namespace)`.
Needs `list` on `resourcequotas` in the namespace (docs/install.md "RBAC"); without it the
read fails and growth goes on unchecked by the quota, as before (a create the quota refuses
is still caught: `QuotaExceeded`).

Room is `status.hard - status.used`, as the quota controller and the quota admission plugin
write them, per resource (`pods`/`count/pods`, `requests.cpu`/`cpu`,
`requests.memory`/`memory`), the least over every quota. A quota with `scopes` or a
`scopeSelector` is not evaluated here (whether it applies to a pod depends on the pod); a
create it refuses is.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import replace
from decimal import Decimal
from typing import Any

from reconciler.adapters.kube.client import KubeError, _Api
from reconciler.domain.errors import SourceUnavailable
from reconciler.domain.podspec import parse_quantity
from reconciler.domain.quota import QuotaRoom

# Each resource we size by and the names a quota may give it.
_RESOURCES = {
    "pods": ("pods", "count/pods"),
    "cpu": ("requests.cpu", "cpu"),
    "memory": ("requests.memory", "memory"),
}


class QuotaExceeded(SourceUnavailable):
    """A pod create refused by a ResourceQuota (403 "exceeded quota"): not a bad request but
    a full namespace, retried with backoff like an unavailable server (the ReplicaSet
    controller retries the same way), and reported to the quota read as a refusal."""


def is_quota_refusal(e: KubeError) -> bool:
    return e.status == 403 and "exceeded quota" in str(e)


class KubeQuota:
    """`quota_room(namespace)` for a class with an `_api`; `quota_refused(namespace)` is
    called by the pod create when a quota refused it."""

    _api: _Api
    _refused_namespaces: set[str]

    def quota_refused(self, namespace: str) -> None:
        self._refused_namespaces.add(namespace)

    def quota_room(self, namespace: str) -> QuotaRoom:
        """The least `hard - used` of pods, CPU and memory requests over the namespace's
        ResourceQuotas; raises SourceUnavailable or KubeError (403: no RBAC to list them)."""
        items, _ = self._api.list_all(
            f"list resourcequotas {namespace}",
            self._api.core.list_namespaced_resource_quota,
            namespace,
        )
        refused = namespace in self._refused_namespaces
        self._refused_namespaces.discard(namespace)
        return replace(room_from_quotas(items), refused=refused)


def room_from_quotas(items: Iterable[dict[str, Any]]) -> QuotaRoom:
    """`QuotaRoom` of ResourceQuota objects as the API returns them (JSON). A quota the
    controller has not written a status for yet admits no pod at all (the admission plugin
    refuses while `status.hard` is empty): its resources have no room."""
    least: dict[str, Decimal] = {}
    said: list[str] = []
    seen: list[str] = []
    for item in items:
        meta = item.get("metadata") or {}
        name = meta.get("name", "")
        seen.append(f"{name}@{meta.get('resourceVersion', '')}")
        spec = item.get("spec") or {}
        if spec.get("scopes") or spec.get("scopeSelector"):
            continue
        status = item.get("status") or {}
        hard, used = status.get("hard") or {}, status.get("used") or {}
        synced = bool(hard)
        if not synced:
            hard = spec.get("hard") or {}
        for resource, keys in _RESOURCES.items():
            for key in keys:
                if key not in hard:
                    continue
                limit = parse_quantity(hard[key])
                taken = parse_quantity(used.get(key, 0)) if synced else limit
                left = max(Decimal(0), limit - taken)
                if resource not in least or left < least[resource]:
                    least[resource] = left
                shown = f"{used.get(key, '?')}/{hard[key]}" if synced else "status not written yet"
                said.append(f"{key} {shown} (quota {name})")
    pods = least.get("pods")
    cpu = least.get("cpu")
    mem = least.get("memory")
    return QuotaRoom(
        pods=None if pods is None else math.floor(pods),
        cpu_m=None if cpu is None else float(cpu * 1000),
        mem_bytes=None if mem is None else float(mem),
        used_of_hard=tuple(said),
        fingerprint=tuple(sorted(seen)),
    )
