"""The REST API's request and answer bodies, and its one shape of error.

Errors are `{"error": "..."}`; a 400 also lists the offending fields in `errors`, each named
as the client sent it (the old admin UI shows the message as it is).
"""

from __future__ import annotations

from typing import Annotated, Any

import pydantic
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field


class OrchestrateBody(BaseModel):
    """Overrides for this kind until policy.yaml next changes (docs/contracts.md "Sizing")."""

    model_config = ConfigDict(extra="forbid")
    maxInstances: Annotated[int, Field(ge=3, le=100, strict=True)] | None = None
    resourcePerInstance: Annotated[int, Field(ge=1, le=5000, strict=True)] | None = None


class RunIn(BaseModel):
    """Where resource `:id` runs. The old UI reads `runIn` from the JSON body."""

    runIn: str


class InstanceView(BaseModel):
    instanceId: str
    used: int
    count: int
    resources: list[str]


class Orchestration(BaseModel):
    resource: str
    maxInstances: int
    resourcePerInstance: int
    instances: list[InstanceView]
    unassigned: int | None = None
    error: str | None = None


class Restart(BaseModel):
    resource: str
    requestedAt: float  # Unix seconds; the pods the next pass sees are replaced
    maxUnavailable: int


class Confirmation(BaseModel):
    resource: str
    confirmed: str  # what the held plan would do


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


class Readiness(BaseModel):
    ready: bool
    problems: dict[str, str]


class FieldError(BaseModel):
    field: str
    message: str


class ErrorBody(BaseModel):
    error: str
    errors: list[FieldError] | None = None


_ERROR_MEANINGS = {
    400: "a body parameter is invalid: `errors` names each field",
    401: "RECONCILER_API_TOKEN is set and the bearer token is missing or wrong (and no"
    " trusted proxy vouches for a user)",
    403: "authorised by a trusted proxy's header, but sent from a page of another origin",
    404: "unknown resource kind, or the id is not assigned to any instance",
    409: "orchestrate: the kind needs more instances than maxInstances (some ids stay"
    " unassigned); confirm: nothing is held by the safety valve",
    503: "the orchestration could not be written (ZooKeeper or the database unreachable),"
    " or this daemon is a standby that could not forward the request to the leader (none"
    " elected yet, or unreachable: `Retry-After`); a forwarded request is answered by the"
    " leader, named in `X-Reconciler-Leader`",
}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI `responses` of a route that may answer `codes`."""
    return {c: {"model": ErrorBody, "description": _ERROR_MEANINGS[c]} for c in codes}


def field_errors(e: pydantic.ValidationError, given: dict[str, int]) -> list[FieldError]:
    """Name the override field(s) a merged-policy error is about."""
    out: list[FieldError] = []
    for err in e.errors():
        loc = [str(p) for p in err["loc"]]
        name = next((f for f in given if f in loc), None)
        # A model-level rule (initInstances <= maxInstances) has no location of its own.
        fields = [name] if name else [f for f in ("maxInstances",) if f in given] or list(given)
        msg = str(err["msg"]).removeprefix("Value error, ")
        out.extend(FieldError(field=f, message=msg) for f in fields)
    return out


def bad_request(errors: list[FieldError]) -> JSONResponse:
    summary = "; ".join(f"{e.field}: {e.message}" for e in errors)
    body = ErrorBody(error=f"invalid request: {summary}", errors=errors)
    return JSONResponse(body.model_dump(), status_code=400)
