"""The sizing rules (docs/contracts.md "Sizing"): how many instances a kind's rows get, and
at what capacity.

Two counts of instances are named apart because they differ. The rule's count,
`floor(rows / resourcePerInstance) + 1`, always leaves room for one more row, so it is one
more than needed when resourcePerInstance divides the rows: the old orchestrator's rule,
kept so that a fleet it sized is sized alike. The fewest instances that can hold the rows,
`ceil(rows / resourcePerInstance)`, is the bound below which some id has no instance: what an
operator's pin is checked against. Pure.
"""

from __future__ import annotations

from dataclasses import dataclass

from reconciler.policy.schema import KindPolicy


def spec_instances(rows: int, per: int) -> int:
    """The instances the sizing rule gives `rows` rows at `per` each, before initInstances
    and maxInstances: `floor(rows / per) + 1` (one more than `instances_to_hold` when `per`
    divides `rows`, as the old orchestrator sized)."""
    return rows // per + 1


def spec_capacity(rows: int, instances: int) -> int:
    """The count (resourcePerInstance) the sizing rule gives each of `instances` instances
    when there are more of them than the rows need: `floor(rows / instances) + 1`, so that
    the rows spread over all of them instead of filling the first few."""
    return rows // instances + 1


def instances_to_hold(rows: int, per: int) -> int:
    """The fewest instances that hold `rows` rows at `per` each: `ceil(rows / per)` (0 for
    no rows). Fewer leave some id without an instance."""
    return -(-rows // per)


@dataclass(frozen=True, slots=True)
class Sizing:
    instances: int
    capacity: int  # resources per instance (the znode's "count")
    error: str | None = None  # set when the rows need more than maxInstances
    needed: int = 0  # instances the row count alone gets (`spec_instances`)


def size_for(
    rows: int, policy: KindPolicy, scale_target: int | None = None, pinned: int | None = None
) -> Sizing:
    """The sizing rules (docs/contracts.md "Sizing"), plus an optional autoscaling target on
    top; an operator's pinned count (`reconciler scale`/`stop`) replaces both.

    Over maxInstances the old code failed the whole orchestration; here the kind keeps
    maxInstances instances at full capacity and the rest of the rows stay unassigned.
    """
    per, cap = policy.resource_per_instance, policy.max_instances
    needed = spec_instances(rows, per)
    if pinned is not None:
        return _pinned_sizing(rows, per, pinned, needed)
    if needed > cap:
        return Sizing(cap, per, f"require instances more than the max: {needed}/{cap}", needed)
    instances = max(needed, policy.init_instances)
    if scale_target is not None:
        instances = max(instances, min(scale_target, cap))
    capacity = per if instances == needed else spec_capacity(rows, instances)
    return Sizing(instances, capacity, None, needed)


def _pinned_sizing(rows: int, per: int, pinned: int, needed: int) -> Sizing:
    """Exactly `pinned` instances (0: none, the kind is stopped). Pinned too few for the rows
    (the table grew since), the instances are full and the rest stays unassigned, reported."""
    if pinned == 0:
        return Sizing(0, 0, None, needed)
    least = instances_to_hold(rows, per)
    if pinned < least:
        return Sizing(
            pinned, per, f"pinned to {pinned} instances: {rows} rows need {least}", needed
        )
    capacity = per if pinned == needed else min(per, spec_capacity(rows, pinned))
    return Sizing(pinned, capacity, None, needed)
