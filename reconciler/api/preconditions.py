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
    """A standby never applies a write; nor does an observe-only daemon. Writes to a standby
    are sent on to the leader before they reach a route (`forward.py`): this catches
    leadership lost in between."""
    refuse_when_observing(control)
    standby = control.standby_of()
    if standby is not None:
        raise HTTPException(
            503,
            f"not the leader: this daemon ({standby.identity}) is a standby; "
            f"the leader is {standby.leader}",
            headers={"X-Reconciler-Leader": standby.leader or ""},
        )


def refuse_when_observing(control: Control) -> None:
    """An observe-only daemon (RECONCILER_OBSERVE_ONLY) applies nothing, and forwards nothing:
    it takes no part in the election, so it knows no leader."""
    if control.observe_only:
        raise HTTPException(
            503,
            "observe-only: this daemon plans and writes nothing (RECONCILER_OBSERVE_ONLY); "
            "send writes to the acting daemon; GET /v1/plan shows what it would apply",
        )
