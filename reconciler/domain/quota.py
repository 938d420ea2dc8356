"""What a namespace's ResourceQuotas still admit, as a value: pods, CPU and memory requests.

The adapter (`reconciler/adapters/kube/quota.py`) reads every ResourceQuota of the namespace
and keeps, per resource, the least `hard - used` from the quotas' status (what the quota
controller and the quota admission plugin write); `reconciler/rules/capacity.py` turns it into
the pods of a kind that still fit. None for a resource: no quota limits it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class QuotaRoom:
    """Room left under the namespace's ResourceQuotas (the least over all of them)."""

    pods: int | None = None
    cpu_m: float | None = None  # requests.cpu (or cpu), millicores
    mem_bytes: float | None = None  # requests.memory (or memory), bytes
    # What limits, for an operator: "pods 3/3 (quota pods)" per limiting resource.
    used_of_hard: tuple[str, ...] = ()
    # A pod create was refused with "exceeded quota" since the last read: the figures above
    # may lag what the apiserver counts (a quota filled by someone else).
    refused: bool = False
    # Every quota of the namespace as "name@resourceVersion", scoped ones too: tells a later
    # read whether anything about the quotas changed since.
    fingerprint: tuple[str, ...] = ()

    @property
    def limited(self) -> bool:
        return self.pods is not None or self.cpu_m is not None or self.mem_bytes is not None

    def describe(self) -> str:
        return ", ".join(self.used_of_hard) or "no ResourceQuota limits pods, CPU or memory"


NO_QUOTA = QuotaRoom()
