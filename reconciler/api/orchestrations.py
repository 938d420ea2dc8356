"""The old admin UI's paths (docs/contracts.md "REST API"), with the same shapes: read an
orchestration, find where an id runs, rebalance a kind; and beside them a kind's rolling
restart and the confirmation of a plan the safety valve holds."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pydantic
from fastapi import APIRouter, Depends, HTTPException, Request

from reconciler.api.preconditions import policy_of, refuse_on_standby
from reconciler.api.schemas import (
    Confirmation,
    FieldError,
    OrchestrateBody,
    Orchestration,
    Restart,
    RunIn,
    bad_request,
    error_responses,
    field_errors,
)
from reconciler.policy.schema import effective
from reconciler.reconcile.planner import size_for
from reconciler.runtime.control import Control
from reconciler.telemetry.logs import log


def orchestrations_router(control: Control, require_token: Callable[..., None]) -> APIRouter:
    router = APIRouter()
    authorised = [Depends(require_token)]

    @router.post(
        "/v1/api/orchestrations/{resource}/orchestrate",
        response_model=Orchestration,
        dependencies=authorised,
        responses=error_responses(400, 401, 403, 404, 409, 503),
        summary="Rebalance the kind now and return the new orchestration",
    )
    def orchestrate(request: Request, resource: str, body: OrchestrateBody | None = None) -> Any:
        """Rebalance now (ids move off the fullest instances only). `maxInstances` and
        `resourcePerInstance`, when given, override policy.yaml for this kind until the file
        next changes."""
        policy = policy_of(control, resource)
        overrides = body.model_dump(exclude_none=True) if body else {}
        try:
            merged = effective(policy, overrides)
        except pydantic.ValidationError as e:
            return bad_request(field_errors(e, overrides))
        known = control.row_count(resource)
        if overrides and known is not None:
            sizing = size_for(known, merged)
            if sizing.error:
                return bad_request(
                    [
                        FieldError(field=f, message=f"{known} rows: {sizing.error}")
                        for f in overrides
                    ]
                )
        refuse_on_standby(control)
        log.info(
            "orchestrate requested", resource=resource, overrides=overrides, by=request.state.caller
        )
        try:
            result = control.orchestrate(resource, overrides)
        except Exception as e:  # timed out, or the daemon is stopping
            raise HTTPException(503, f"orchestration did not run: {e}") from e
        report = result.plan.reports.get(resource)
        blind = [b for b in (report.blind if report else ()) if b in ("zookeeper", "rows")]
        if report is None or blind:
            what = ", ".join(blind) or "policy"
            raise HTTPException(503, f"not rebalanced: cannot read {what}")
        if result.standby:
            raise HTTPException(503, "not rebalanced: this daemon does not lead (no leader yet)")
        failed = [o.error for o in result.failed if o.op.kind == resource]
        if failed:
            raise HTTPException(503, f"orchestration incomplete: {failed[0]}")
        if any(o.op.kind == resource for o in result.left):
            raise HTTPException(503, "orchestration incomplete: pass over budget, the rest follows")
        if report.error:
            raise HTTPException(409, f"{report.error} ({report.unassigned} ids unassigned)")
        return control.read.orchestration(resource)

    @router.post(
        "/v1/api/orchestrations/{resource}/restart",
        response_model=Restart,
        dependencies=authorised,
        responses=error_responses(401, 403, 404, 503),
        summary="Rolling restart of the kind's pods, rollout.maxUnavailable at a time",
    )
    def restart(resource: str) -> Restart:
        """Every pod of the kind started before now is replaced, `rollout.maxUnavailable` at
        a time, the next only once the new one is Running (and heard from, with heartbeats).
        Held in the leader's memory: a failover or restart of the daemon ends it."""
        policy = policy_of(control, resource)
        refuse_on_standby(control)
        now = time.time()
        control.restart(resource)
        return Restart(
            resource=resource, requestedAt=now, maxUnavailable=policy.rollout.max_unavailable
        )

    @router.post(
        "/v1/api/orchestrations/{resource}/confirm",
        response_model=Confirmation,
        dependencies=authorised,
        responses=error_responses(401, 403, 404, 409, 503),
        summary="Let the kind's plan held by the safety valve go ahead",
    )
    def confirm(resource: str) -> Confirmation:
        """The safety valve holds a plan that would unassign a large share of the kind's ids
        or delete many pods (`status` says why). This lets it go ahead on the next pass."""
        policy_of(control, resource)
        refuse_on_standby(control)
        confirmed = control.confirm(resource)
        if confirmed is None:
            raise HTTPException(409, f"nothing of {resource} is held by the safety valve")
        return Confirmation(resource=resource, confirmed=confirmed)

    @router.get(
        "/v1/api/orchestrations/{resource}",
        response_model=Orchestration,
        responses=error_responses(404),
        summary="The kind's current orchestration (as the last pass left it)",
    )
    def get_orchestration(resource: str) -> Any:
        policy_of(control, resource)
        return control.read.orchestration(resource)

    @router.get(
        "/v1/api/orchestrations/{resource}/{id}/instances",
        response_model=RunIn,
        responses=error_responses(404),
        summary="The instance that serves resource id `:id`",
    )
    def run_in(resource: str, id: str) -> RunIn:
        policy_of(control, resource)
        instance = control.read.run_in(resource, id)
        if instance is None:
            raise HTTPException(404, f"{resource} {id!r} is not assigned to any instance")
        return RunIn(runIn=instance)

    return router
