"""Room on the nodes, pure: how many more pods of a kind fit.

The capacity check of docs/contracts.md "Elastic scaling": a scale-up never goes past what
the schedulable nodes can still hold, and what does not fit is reported as a shortfall. No
clients: the nodes come in as `NodeCapacity` (`reconciler/reconcile/autoscale.py` reads them
from the cluster). `limit_to_room` (`scale_decision.py`) caps a decision to the `Room` found
here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

from reconciler.domain.model import NodeCapacity

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
