"""Whether a count may be a kind's pinned instance count (`reconciler scale`, REST `.../scale`)."""

from __future__ import annotations

from reconciler.policy.schema import KindPolicy
from reconciler.rules.sizing import instances_to_hold


def pin_problem(policy: KindPolicy, rows: int | None, instances: int) -> str | None:
    """Why `instances` cannot be the kind's pinned count (None: it can).

    Never above maxInstances; and unless it is 0 (stop), enough instances of
    resourcePerInstance for the rows the daemon knows of, so that no id is left without an
    instance by a scale-down."""
    if instances > policy.max_instances:
        return f"{instances} is above maxInstances {policy.max_instances}"
    if not instances or rows is None:
        return None
    needed = instances_to_hold(rows, policy.resource_per_instance)
    if instances < needed:
        return (
            f"{instances} instances of resourcePerInstance {policy.resource_per_instance} "
            f"cannot hold {rows} rows: at least {needed}"
        )
    return None
