"""Room on the nodes and under the namespace's ResourceQuota, pure: how many more pods of a
kind fit.

The capacity check of docs/contracts.md "Elastic scaling": a scale-up never goes past what
the schedulable nodes can still hold nor past what the namespace's ResourceQuota admits, and
what does not fit is reported as a shortfall. No clients: the nodes come in as
`NodeCapacity`, the quota as `QuotaRoom` (`reconciler/reconcile/autoscale.py` and
`reconciler/reconcile/admission.py` read them from the cluster). `limit_to_room`
(`scale_decision.py`) caps a decision to the `Room` found here; `admit_sizing` caps the
row-count sizing (growth) to the instances whose pod the quota admits.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

from reconciler.domain.model import NodeCapacity
from reconciler.domain.quota import QuotaRoom
from reconciler.policy.schema import KindPolicy
from reconciler.rules.sizing import Sizing

# The start of a KindReport error that the quota, not maxInstances, left ids unassigned.
QUOTA_ERROR = "pod quota"

# Float noise must not lose a pod: floor(0.3 / 0.1) would be 2.
_EPS = 1e-9


@dataclass(frozen=True, slots=True)
class Room:
    """How many more pods of the kind the nodes can hold now.

    `fit` None with `known` True: nothing to check (the template requests nothing); with
    `known` False the nodes could not be read, and no pod is added on a guess.
    """

    fit: int | None  # pods that fit on the schedulable nodes
    pending: int = 0  # the kind's instances whose pod is not Running yet: they take room first
    known: bool = True
    note: str | None = None

    @property
    def headroom(self) -> int | None:
        return None if self.fit is None else max(0, self.fit - self.pending)


def fit_on_nodes(nodes: Sequence[NodeCapacity], pod_cpu_m: float, pod_mem_bytes: float) -> int:
    """Pods of this size the schedulable nodes can still hold (the capacity check of
    docs/contracts.md "Elastic scaling").

    Sum over schedulable nodes of floor(min(free CPU / pod CPU, free memory / pod memory)),
    free = allocatable - the requests of the pods already bound there. A zero request does
    not limit that dimension; a pod requesting nothing at all is not something this check
    can size (ValueError).
    """
    if pod_cpu_m <= 0 and pod_mem_bytes <= 0:
        raise ValueError("the pod requests neither CPU nor memory: nothing to fit")
    total = 0
    for n in nodes:
        if not n.schedulable:
            continue
        fits = []
        if pod_cpu_m > 0:
            fits.append(max(0.0, n.allocatable_cpu_m - n.requested_cpu_m) / pod_cpu_m)
        if pod_mem_bytes > 0:
            fits.append(max(0.0, n.allocatable_mem_bytes - n.requested_mem_bytes) / pod_mem_bytes)
        total += math.floor(min(fits) + _EPS)
    return total


def claim(
    nodes: Sequence[NodeCapacity], pods: int, pod_cpu_m: float, pod_mem_bytes: float
) -> list[NodeCapacity]:
    """The nodes after placing `pods` more pods (first fit, as many per node as hold).

    Used to let a second kind scaling up in the same pass see the room the first one took.
    """
    out: list[NodeCapacity] = []
    left = pods
    for n in nodes:
        if left > 0 and n.schedulable:
            here = min(left, fit_on_nodes([n], pod_cpu_m, pod_mem_bytes))
            left -= here
            n = replace(
                n,
                requested_cpu_m=n.requested_cpu_m + here * pod_cpu_m,
                requested_mem_bytes=n.requested_mem_bytes + here * pod_mem_bytes,
            )
        out.append(n)
    return out


def fit_in_quota(room: QuotaRoom, pod_cpu_m: float, pod_mem_bytes: float) -> int | None:
    """Pods of this size the namespace's ResourceQuotas still admit: the least of the pods
    left and the CPU and memory requests left over the pod's own; None when no quota limits
    any of them. A dimension the pod requests nothing of does not limit it (the quota
    admission plugin asks no request of a pod when the quota names none)."""
    fits: list[int] = []
    if room.pods is not None:
        fits.append(max(0, room.pods))
    if room.cpu_m is not None and pod_cpu_m > 0:
        fits.append(max(0, math.floor(room.cpu_m / pod_cpu_m + _EPS)))
    if room.mem_bytes is not None and pod_mem_bytes > 0:
        fits.append(max(0, math.floor(room.mem_bytes / pod_mem_bytes + _EPS)))
    return min(fits) if fits else None


def admit_sizing(sizing: Sizing, policy: KindPolicy, pod_limit: int | None, rows: int) -> Sizing:
    """The sizing capped at `pod_limit` instances, the most whose pod the quota admits
    (`KindIntent.pod_limit`; None: no limit). Capped, every instance takes rows up to
    resourcePerInstance and the rest stays unassigned, reported as a `QUOTA_ERROR`: an
    instance without a pod would hold ids no worker serves."""
    if pod_limit is None or sizing.instances <= pod_limit:
        return sizing
    per = policy.resource_per_instance
    held = pod_limit * per
    error = None
    if rows > held:
        error = (
            f"{QUOTA_ERROR}: the namespace's ResourceQuota admits pods for {pod_limit} "
            f"instances, {sizing.instances} wanted: {rows - held} ids unassigned"
        )
    return Sizing(pod_limit, per, error or sizing.error, sizing.needed)
