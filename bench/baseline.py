"""The old orchestrator's full re-orchestration (docs/contracts.md "Sizing"), kept as the
baseline.

It rebuilt every assignment from scratch: sizing from COUNT(*), then the id list cut into
consecutive slices of `resourcePerInstance`, one per instance, every instance written.
"""

from __future__ import annotations

from reconciler.domain.model import Assignment, Instance
from reconciler.policy.schema import KindPolicy


def full_reorchestration(
    ids: frozenset[str] | list[str], policy: KindPolicy, previous: Assignment | None = None
) -> Assignment:
    count = len(ids)
    per = policy.resource_per_instance
    instances = count // per + 1
    if instances > policy.max_instances:
        raise ValueError(f"require instances more than the max: {instances}/{policy.max_instances}")
    if instances < policy.init_instances:
        instances = policy.init_instances
        per = count // instances + 1
    ordered = sorted(ids)
    out: Assignment = {}
    for i in range(instances):
        chunk = frozenset(ordered[i * per : (i + 1) * per])
        times = previous[i].reload_times + 1 if previous and i in previous else 0
        out[i] = Instance(i, chunk, per, times)
    return out


def moved(before: Assignment, after: Assignment) -> int:
    """Ids present before and after whose instance changed."""
    owner = {rid: i for i, inst in before.items() for rid in inst.ids}
    return sum(1 for i, inst in after.items() for rid in inst.ids if owner.get(rid, i) != i)
