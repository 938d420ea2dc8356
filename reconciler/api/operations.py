"""REST for operators' scale, stop and start of a kind (reconciler/reconcile/operations.py):

```
POST /v1/api/orchestrations/:resource/scale   {"instances": N}   pin the kind at N instances
POST /v1/api/orchestrations/:resource/stop                        pin it at 0: no ids, no pods
POST /v1/api/orchestrations/:resource/start                       back to the policy's sizing
```

Same authorisation as the other POSTs (`require_token`), 503 on a standby. The pin is in
ZooKeeper when the answer is 200; the next pass (woken at once) carries it out.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field

from reconciler.api.app import FieldError, _bad_request, _errors
from reconciler.policy.schema import KindPolicy
from reconciler.reconcile.operations import pin_kind
from reconciler.rules.pinning import pin_problem
from reconciler.runtime.loop import Daemon, Wake


class ScaleBody(BaseModel):
    """The instance count to pin the kind at (0 stops it), up to its maxInstances."""

    model_config = ConfigDict(extra="forbid")
    instances: Annotated[int, Field(ge=0, le=100, strict=True)]


class Pinned(BaseModel):
    resource: str
    instances: int | None  # the count now pinned (0: stopped); None: the policy sizes it
    previous: int | None  # the count pinned before; None: the policy sized it
    maxInstances: int
    by: str  # who asked: "token", the proxy's user, or "anyone"
    at: float  # Unix seconds


def operations_router(
    daemon: Daemon,
    require_token: Callable[..., None],
    refuse_on_standby: Callable[[], None],
    policy_of: Callable[[str], KindPolicy],
) -> APIRouter:
    router = APIRouter()

    def pin(request: Request, resource: str, instances: int | None) -> Pinned:
        policy = policy_of(resource)
        refuse_on_standby()
        by, now = str(request.state.caller), time.time()
        try:
            previous = pin_kind(daemon.state, daemon.ports.pins, resource, instances, by, now)
        except Exception as e:  # ZooKeeper unreachable, fenced, or no pin store
            raise HTTPException(503, f"not pinned: {e}") from e
        daemon.wake(Wake("tick"))
        return Pinned(
            resource=resource,
            instances=instances,
            previous=previous.instances if previous is not None else None,
            maxInstances=policy.max_instances,
            by=by,
            at=now,
        )

    @router.post(
        "/v1/api/orchestrations/{resource}/scale",
        response_model=Pinned,
        dependencies=[Depends(require_token)],
        responses=_errors(400, 401, 403, 404, 503),
        summary="Pin the kind's instance count (0 stops it) until `start`",
    )
    def scale(request: Request, resource: str, body: ScaleBody) -> Any:
        """Exactly `instances` instances from the next pass on, whatever the row count and
        the autoscaler say, until `start`; kept in ZooKeeper (a restart or a failover keeps
        it). Refused (400, `instances`) above maxInstances, or when fewer than the kind's
        rows need at resourcePerInstance each. The safety valve does not hold the plan this
        leads to: asking is confirming."""
        policy = policy_of(resource)
        problem = pin_problem(policy, daemon.state.row_count(resource), body.instances)
        if problem is not None:
            return _bad_request([FieldError(field="instances", message=problem)])
        return pin(request, resource, body.instances)

    @router.post(
        "/v1/api/orchestrations/{resource}/stop",
        response_model=Pinned,
        dependencies=[Depends(require_token)],
        responses=_errors(401, 403, 404, 503),
        summary="Stop the kind: no instances, its ids unassigned, its pods deleted",
    )
    def stop(request: Request, resource: str) -> Pinned:
        """A pin at 0 instances: every instance of the kind and its pod are deleted on the
        next pass, and none is made again until `start`."""
        return pin(request, resource, 0)

    @router.post(
        "/v1/api/orchestrations/{resource}/start",
        response_model=Pinned,
        dependencies=[Depends(require_token)],
        responses=_errors(401, 403, 404, 503),
        summary="Remove the kind's pin: it returns to its policy's sizing",
    )
    def start(request: Request, resource: str) -> Pinned:
        """The kind is sized by its rows, policy and autoscaler again, re-sized in full on
        the next pass. A kind without a pin is left as it is (200, `previous` null)."""
        return pin(request, resource, None)

    return router
