"""The sizing rules (docs/contracts.md "Sizing"): how many instances a kind's rows get, and
at what capacity.

Two counts of instances are named apart because they differ. The rule's count,
`floor(rows / resourcePerInstance) + 1`, always leaves room for one more row, so it is one
more than needed when resourcePerInstance divides the rows: the old orchestrator's rule,
kept so that a fleet it sized is sized alike. The fewest instances that can hold the rows,
`ceil(rows / resourcePerInstance)`, is the bound below which some id has no instance: what an
operator's pin is checked against.

A re-size that lowers the instance count sizes for the rows plus `HEADROOM`
(`size_for_layout`): without it the count `rows // instances + 1` leaves one free slot per
instance, and the next handful of rows would open again the instance just removed. Pure.
"""

from __future__ import annotations

import math
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


# The share of the rows a scale-down leaves room for: HorizontalPodAutoscaler's default
# tolerance, the change in load it lets pass without acting (docs/contracts.md "Sizing").
HEADROOM = 0.1


def with_headroom(rows: int) -> int:
    """`rows` plus HEADROOM of them, rounded up: what a scale-down sizes for."""
    return rows + math.ceil(rows * HEADROOM)


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


def size_for_layout(
    rows: int,
    policy: KindPolicy,
    current: int,
    scale_target: int | None = None,
    pinned: int | None = None,
) -> Sizing:
    """The size a layout of `current` instances is re-sized to: `size_for`, except that a
    scale-down (fewer instances than `current`) sizes for `with_headroom(rows)`, so the
    rows that come next fit in the instances that stay and `count` rises towards
    resourcePerInstance (docs/contracts.md "Sizing"). The headroom only stops a scale-down
    short: it never adds an instance to `current`, and never passes maxInstances. A pin is
    exact and takes no headroom (a pinned layout grows by raising its counts, never by
    opening an instance)."""
    sizing = size_for(rows, policy, scale_target, pinned)
    if pinned is not None or sizing.error is not None or sizing.instances >= current:
        return sizing
    roomy = size_for(with_headroom(rows), policy, scale_target)
    instances = min(roomy.instances, current)
    if roomy.error is None and instances == roomy.instances:
        capacity = roomy.capacity
    else:  # the headroom would keep more instances than there are, or pass maxInstances
        capacity = min(policy.resource_per_instance, with_headroom(rows) // instances + 1)
    return Sizing(instances, capacity, None, sizing.needed)
