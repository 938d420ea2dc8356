"""REST for operators' scale, stop and start of a kind (reconciler/reconcile/operations.py):

```
POST /v1/api/orchestrations/:resource/scale   {"instances": N}   pin the kind at N instances
POST /v1/api/orchestrations/:resource/stop                        pin it at 0: no ids, no pods
POST /v1/api/orchestrations/:resource/start                       back to the policy's sizing
```

Same authorisation as the other POSTs, 503 on a standby. The pin is in ZooKeeper when the
answer is 200; the next pass (woken at once) carries it out.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request

from reconciler.api.preconditions import policy_of, refuse_on_standby
from reconciler.api.schemas import FieldError, Pinned, ScaleBody, bad_request, error_responses
from reconciler.rules.pinning import pin_problem
from reconciler.runtime.control import Control


def operations_router(control: Control, require_token: Callable[..., None]) -> APIRouter:
    router = APIRouter()
    authorised = [Depends(require_token)]

    def pin(request: Request, resource: str, instances: int | None) -> Pinned:
        policy = policy_of(control, resource)
        refuse_on_standby(control)
        by, now = str(request.state.caller), time.time()
        try:
            previous = control.pin(resource, instances, by, now)
        except Exception as e:  # ZooKeeper unreachable, fenced, or no pin store
            raise HTTPException(503, f"not pinned: {e}") from e
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
        dependencies=authorised,
        responses=error_responses(400, 401, 403, 404, 503),
        summary="Pin the kind's instance count (0 stops it) until `start`",
    )
    def scale(request: Request, resource: str, body: ScaleBody) -> Any:
        """Exactly `instances` instances from the next pass on, whatever the row count and
        the autoscaler say, until `start`; kept in ZooKeeper (a restart or a failover keeps
        it). Refused (400, `instances`) above maxInstances, or when fewer than the kind's
        rows need at resourcePerInstance each. The safety valve does not hold the plan this
        leads to: asking is confirming."""
        policy = policy_of(control, resource)
        problem = pin_problem(policy, control.row_count(resource), body.instances)
        if problem is not None:
            return bad_request([FieldError(field="instances", message=problem)])
        return pin(request, resource, body.instances)

    @router.post(
        "/v1/api/orchestrations/{resource}/stop",
        response_model=Pinned,
        dependencies=authorised,
        responses=error_responses(401, 403, 404, 503),
        summary="Stop the kind: no instances, its ids unassigned, its pods deleted",
    )
    def stop(request: Request, resource: str) -> Pinned:
        """A pin at 0 instances: every instance of the kind and its pod are deleted on the
        next pass, and none is made again until `start`."""
        return pin(request, resource, 0)

    @router.post(
        "/v1/api/orchestrations/{resource}/start",
        response_model=Pinned,
        dependencies=authorised,
        responses=error_responses(401, 403, 404, 503),
        summary="Remove the kind's pin: it returns to its policy's sizing",
    )
    def start(request: Request, resource: str) -> Pinned:
        """The kind is sized by its rows, policy and autoscaler again, re-sized in full on
        the next pass. A kind without a pin is left as it is (200, `previous` null)."""
        return pin(request, resource, None)

    return router
