"""Pod templates as values, and the pods rendered from them (docs/contracts.md "Pods").

Pure: no Kubernetes client import, so the planner, the CLI (`reconciler plan`) and the unit
tests can render and size pods without a cluster. `reconciler/adapters/kube/pods.py` sends
what this renders; `reconciler/policy/templates.py` loads the template files.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from reconciler.domain.model import pod_name

# Labels the daemon adds to every pod it creates: its pods are found by these, never by name,
# so pods a human created from the same template are left alone.
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY_VALUE = "reconciler"
KIND_LABEL = "reconciler.iota/kind"
INSTANCE_ID_LABEL = "instanceId"  # docs/contracts.md "Pods": metadata.labels.instanceId
# The identity of the daemon that created the pod (leader election: only the leader creates).
CREATED_BY_ANNOTATION = "reconciler.iota/created-by"
# The template revision a pod was rendered from: a template edit rolls the older pods.
REVISION_ANNOTATION = "reconciler.iota/revision"


def managed_selector(kind: str) -> str:
    """The label selector matching the pods this daemon manages for one kind."""
    return f"{MANAGED_BY_LABEL}={MANAGED_BY_VALUE},{KIND_LABEL}={kind}"


@dataclass(frozen=True)
class PodTemplate:
    kind: str  # resource kind, e.g. "Thing"
    namespace: str
    instance_name: str  # pod name prefix, e.g. "iota-dac"
    manifest: dict[str, Any]  # the template YAML as loaded; never mutated (render deep-copies)


def template_revision(t: PodTemplate) -> str:
    """A short digest of the template's manifest: pods rendered from another one are older."""
    canonical = json.dumps(t.manifest, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def render_pod(t: PodTemplate, instance_id: int) -> dict[str, Any]:
    """The pod manifest for one instance: the template plus the fields of docs/contracts.md
    "Pods" and our labels."""
    m = copy.deepcopy(t.manifest)
    meta = m.get("metadata") or {}
    m["metadata"] = meta
    annotations = meta.get("annotations") or {}
    meta["annotations"] = {**annotations, REVISION_ANNOTATION: template_revision(t)}
    meta["name"] = pod_name(t.instance_name, instance_id)
    meta["namespace"] = t.namespace
    # Server-set fields copied from a dumped live pod would make the create fail or lie.
    for k in ("uid", "resourceVersion", "creationTimestamp", "generateName", "deletionTimestamp"):
        meta.pop(k, None)
    m.pop("status", None)
    meta["labels"] = {**(meta.get("labels") or {}), **pod_labels(t, instance_id)}
    m["spec"]["containers"][0]["env"][0]["value"] = str(instance_id)
    return m


def pod_labels(t: PodTemplate, instance_id: int) -> dict[str, str]:
    """The labels the daemon puts on an instance's pod (also on a pod it adopts)."""
    return {
        INSTANCE_ID_LABEL: str(instance_id),
        MANAGED_BY_LABEL: MANAGED_BY_VALUE,
        KIND_LABEL: t.kind,
    }


def pod_requests(t: PodTemplate) -> tuple[float, float]:
    """(CPU millicores, memory bytes) requested by one pod of the template.

    Sums the requests of the regular containers. Like the scheduler, an init container
    counts only when it asks for more than all regular containers together (they run one
    at a time, before the others).
    """
    return spec_requests(t.manifest.get("spec") or {})


def spec_requests(spec: dict[str, Any]) -> tuple[float, float]:
    """(CPU millicores, memory bytes) a pod spec (a dict, as the API returns it) requests.

    The scheduler's sum: regular containers added up, init containers as a maximum (one at
    a time), plus the runtime class overhead when set. Used for templates and for the live
    pods on a node alike, so the capacity check counts both the same way.
    """
    cpu, mem = _sum_requests(spec.get("containers") or [])
    for c in spec.get("initContainers") or []:
        icpu, imem = _sum_requests([c])
        cpu, mem = max(cpu, icpu), max(mem, imem)
    overhead = spec.get("overhead") or {}
    if "cpu" in overhead:
        cpu += float(parse_quantity(overhead["cpu"]) * 1000)
    if "memory" in overhead:
        mem += float(parse_quantity(overhead["memory"]))
    return cpu, mem


def _sum_requests(containers: list[Any]) -> tuple[float, float]:
    cpu = mem = Decimal(0)
    for c in containers:
        req = ((c or {}).get("resources") or {}).get("requests") or {}
        if "cpu" in req:
            cpu += parse_quantity(req["cpu"]) * 1000
        if "memory" in req:
            mem += parse_quantity(req["memory"])
    return float(cpu), float(mem)


# Kubernetes resource.Quantity: <sign><digits>[.<digits>]<suffix>, suffix one of the binary
# (Ki..Ei), decimal SI (n u m "" k M G T P E) or a decimal exponent (e3, E-2). "E" alone is exa,
# "1E3" is an exponent: the regex tries the exponent form first, which needs digits after it.
_QUANTITY_RE = re.compile(
    r"^(?P<num>[+-]?(?:\d+\.?\d*|\.\d+))"
    r"(?P<suffix>[eE][+-]?\d+|Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|)$"
)
_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": Decimal(1),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
}


def parse_quantity(q: str | int | float) -> Decimal:
    """Parse a Kubernetes quantity ("250m", "1", "256Mi", "1G", "1e3") to its base value.

    Exact (Decimal), so "100m" * 1000 is 100 and not 99.99999. YAML may hand us a bare
    number (`cpu: 1`), which is accepted as is.
    """
    if isinstance(q, bool):
        raise ValueError(f"invalid quantity: {q!r}")
    if isinstance(q, int | float):
        return Decimal(str(q))
    s = str(q).strip()
    m = _QUANTITY_RE.match(s)
    if not m:
        raise ValueError(f"invalid quantity: {q!r}")
    try:
        num = Decimal(m["num"])
    except InvalidOperation as e:  # pragma: no cover - the regex admits only valid numbers
        raise ValueError(f"invalid quantity: {q!r}") from e
    suffix = m["suffix"]
    if suffix in _BINARY:
        return num * _BINARY[suffix]
    if suffix in _DECIMAL:
        return num * _DECIMAL[suffix]
    return num.scaleb(int(suffix[1:]))  # exponent form: e3 / E-2
