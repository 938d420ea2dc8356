"""Kubernetes: pure conversions of the apiserver's JSON into `reconciler.domain.model` types.

No network and no client objects: pods, PodMetrics and nodes arrive here as the JSON dicts
the API returns (see `client` for why dicts), so all of this is testable without a server.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from reconciler.domain.model import Pod, PodUsage
from reconciler.domain.podspec import INSTANCE_ID_LABEL, REVISION_ANNOTATION, parse_quantity


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
        revision=str((meta.get("annotations") or {}).get(REVISION_ANNOTATION, "")),
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


def _usage_from_dict(item: dict[str, Any]) -> PodUsage:
    """A metrics.k8s.io PodMetrics -> the pod's usage, summed over its containers."""
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
    """Whether the scheduler would place one of our template pods on this node."""
    spec = node.get("spec") or {}
    if spec.get("unschedulable"):
        return False
    conditions = (node.get("status") or {}).get("conditions") or []
    if not any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions):
        return False
    # Our template pods carry no tolerations: a tainted node takes none of them.
    return not any(t.get("effect") in ("NoSchedule", "NoExecute") for t in spec.get("taints") or [])
