"""What a kind's routes check first: the kind exists (404 naming the known kinds), and for a
write, that this daemon leads (503 naming the leader: the old UI says "try again")."""

from __future__ import annotations

from fastapi import HTTPException

from reconciler.policy.schema import KindPolicy
from reconciler.runtime.control import Control


def policy_of(control: Control, resource: str) -> KindPolicy:
    policy = control.policy(resource)
    if policy is None:
        known = ", ".join(control.kinds()) or "none"
        raise HTTPException(404, f"unknown resource {resource!r} (known: {known})")
    return policy


def refuse_on_standby(control: Control) -> None:
    """A standby never applies a write."""
    standby = control.standby_of()
    if standby is not None:
        raise HTTPException(
            503,
            f"not the leader: this daemon ({standby.identity}) is a standby; "
            f"the leader is {standby.leader}",
            headers={"X-Reconciler-Leader": standby.leader},
        )
