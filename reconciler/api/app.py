"""REST: the old admin UI's paths (SPEC.md), the daemon's status, health probes and /metrics.

FastAPI (with uvicorn, in a thread beside the loop) rather than a hand-written server: it
validates parameters into 4xx answers that name the field and publishes the OpenAPI document
the UI team and the fuzz tests read. Browsers on other origins and authenticating proxies in
front of the daemon: `reconciler/api/access.py`.
"""

from __future__ import annotations

import secrets
import time
from typing import Annotated, Any

import pydantic
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from reconciler.api.access import BrowserAccess, add_cors, foreign_origin, proxy_user
from reconciler.api.guard import MAX_BODY_BYTES, MAX_CONCURRENT, RequestGuard
from reconciler.api.server import ApiServer as ApiServer  # re-exported: imported from here
from reconciler.api.web import fleet_router
from reconciler.policy.schema import KindPolicy, effective
from reconciler.reconcile.planner import size_for
from reconciler.runtime.loop import Daemon, Wake
from reconciler.telemetry import metrics
from reconciler.telemetry.logs import log


class OrchestrateBody(BaseModel):
    """Overrides for this kind until policy.yaml next changes (SPEC.md ranges)."""

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


class FieldError(BaseModel):
    field: str
    message: str


class ErrorBody(BaseModel):
    error: str
    errors: list[FieldError] | None = None


class Readiness(BaseModel):
    ready: bool
    problems: dict[str, str]


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    what = {
        400: "a body parameter is invalid: `errors` names each field",
        401: "RECONCILER_API_TOKEN is set and the bearer token is missing or wrong (and no"
        " trusted proxy vouches for a user)",
        403: "authorised by a trusted proxy's header, but sent from a page of another origin",
        404: "unknown resource kind, or the id is not assigned to any instance",
        409: "orchestrate: the kind needs more instances than maxInstances (some ids stay"
        " unassigned); confirm: nothing is held by the safety valve",
        503: "the orchestration could not be written (ZooKeeper or the database unreachable),"
        " or this daemon is a standby (the error names the leader)",
    }
    return {c: {"model": ErrorBody, "description": what[c]} for c in codes}


def _field_errors(e: pydantic.ValidationError, given: dict[str, int]) -> list[FieldError]:
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


def _bad_request(errors: list[FieldError]) -> JSONResponse:
    summary = "; ".join(f"{e.field}: {e.message}" for e in errors)
    body = ErrorBody(error=f"invalid request: {summary}", errors=errors)
    return JSONResponse(body.model_dump(), status_code=400)


# Module level: with `from __future__ import annotations` FastAPI resolves the dependency's
# string annotation from the module's globals, not from create_app's locals.
bearer = HTTPBearer(auto_error=False, description="RECONCILER_API_TOKEN, when it is set")


def create_app(
    daemon: Daemon,
    token: str | None = None,
    access: BrowserAccess | None = None,
    *,
    max_body_bytes: int = MAX_BODY_BYTES,
    max_concurrent: int = MAX_CONCURRENT,
) -> FastAPI:
    """The REST app. `token`: RECONCILER_API_TOKEN; `access`: CORS origins and the trusted
    proxy header (`BrowserAccess.from_settings`); None keeps both off. The limits: see
    `reconciler.api.guard` (RECONCILER_API_MAX_BODY_BYTES, RECONCILER_API_MAX_CONCURRENT)."""
    access = access or BrowserAccess()
    read = daemon.read  # every GET renders from the read side (reconciler.runtime.status)
    assert read is not None
    app = FastAPI(
        title="reconciler",
        version="1",
        summary="Shards, sizes and heals IoT workers",
        description=(
            "The old admin UI's paths (`/v1/api/orchestrations/...`, same shapes; the UI "
            "treats any status but 200 as failure), the daemon's status, health probes and "
            'Prometheus metrics. Errors are `{"error": "..."}`; a 400 also lists the '
            "offending fields in `errors`."
        ),
    )

    def require_token(
        request: Request,
        creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> None:
        """Authorise a POST, or 401/403. Who asked goes to `request.state.caller` for the
        log: "token", the user a trusted proxy names, or "anyone" when POSTs are open
        (neither a token nor a trusted header is configured)."""
        request.state.caller = caller(request, creds)

    def caller(request: Request, creds: HTTPAuthorizationCredentials | None) -> str:
        if token is None and not access.requires_auth:
            return "anyone"
        if (
            token is not None
            and creds is not None
            and secrets.compare_digest(creds.credentials.encode(), token.encode())
        ):
            return "token"
        user = proxy_user(request, access)
        if user is None:
            raise HTTPException(
                401,
                "a bearer token is required"
                + (
                    f" (or {access.trusted_header} from a trusted proxy)"
                    if access.trusted_header
                    else ""
                ),
                headers={"WWW-Authenticate": "Bearer"},
            )
        origin = foreign_origin(request, access)
        if origin is not None:
            # The proxy's cookie rides along on any page's request: refuse foreign pages.
            raise HTTPException(403, f"cross-origin request from {origin} refused")
        return user

    def authorise(request: Request) -> str:
        """`caller` from the headers alone: the guard runs it before the body is read."""
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        creds = (
            HTTPAuthorizationCredentials(scheme=scheme, credentials=value.strip())
            if scheme.lower() == "bearer" and value.strip()
            else None
        )
        return caller(request, creds)

    app.add_middleware(
        RequestGuard,
        authorise=authorise,
        max_body_bytes=max_body_bytes,
        max_concurrent=max_concurrent,
    )

    def refuse_on_standby() -> None:
        """A standby never applies a write: 503 naming the leader (the UI: "try again")."""
        election = daemon.ports.leadership
        leader = election.leader() if election and not election.is_leader else None
        if election is not None and leader is not None:
            raise HTTPException(
                503,
                f"not the leader: this daemon ({election.identity}) is a standby; "
                f"the leader is {leader}",
                headers={"X-Reconciler-Leader": leader},
            )

    def policy_of(resource: str) -> KindPolicy:
        policy = read.policy(resource)
        if policy is None:
            known = ", ".join(read.kinds()) or "none"
            raise HTTPException(404, f"unknown resource {resource!r} (known: {known})")
        return policy

    @app.exception_handler(RequestValidationError)
    async def bad_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        # 400 as the old API answered, naming each offending field.
        errors = []
        for e in exc.errors():
            path = [str(p) for p in e["loc"] if p != "body"]
            if e.get("type") == "json_invalid":
                path = []  # loc holds the byte offset, not a field
            errors.append(FieldError(field=".".join(path) or "body", message=str(e["msg"])))
        return _bad_request(errors)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(
            ErrorBody(error=str(exc.detail)).model_dump(exclude_none=True),
            status_code=exc.status_code,
            headers=exc.headers,
        )

    @app.post(
        "/v1/api/orchestrations/{resource}/orchestrate",
        response_model=Orchestration,
        dependencies=[Depends(require_token)],
        responses=_errors(400, 401, 403, 404, 409, 503),
        summary="Rebalance the kind now and return the new orchestration",
    )
    def orchestrate(request: Request, resource: str, body: OrchestrateBody | None = None) -> Any:
        """Rebalance now (ids move off the fullest instances only). `maxInstances` and
        `resourcePerInstance`, when given, override policy.yaml for this kind until the file
        next changes."""
        policy = policy_of(resource)
        overrides = body.model_dump(exclude_none=True) if body else {}
        try:
            merged = effective(policy, overrides)
        except pydantic.ValidationError as e:
            return _bad_request(_field_errors(e, overrides))
        known = daemon.state.row_count(resource)
        if overrides and known is not None:
            sizing = size_for(known, merged)
            if sizing.error:
                return _bad_request(
                    [
                        FieldError(field=f, message=f"{known} rows: {sizing.error}")
                        for f in overrides
                    ]
                )
        refuse_on_standby()
        log.info(
            "orchestrate requested", resource=resource, overrides=overrides, by=request.state.caller
        )
        try:
            result = daemon.orchestrate(resource, overrides)
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
        return read.orchestration(resource)

    @app.post(
        "/v1/api/orchestrations/{resource}/restart",
        response_model=Restart,
        dependencies=[Depends(require_token)],
        responses=_errors(401, 403, 404, 503),
        summary="Rolling restart of the kind's pods, rollout.maxUnavailable at a time",
    )
    def restart(resource: str) -> Restart:
        """Every pod of the kind started before now is replaced, `rollout.maxUnavailable` at
        a time, the next only once the new one is Running (and heard from, with heartbeats).
        Held in the leader's memory: a failover or restart of the daemon ends it."""
        policy = policy_of(resource)
        refuse_on_standby()
        now = time.time()
        daemon.state.request_restart(resource)
        daemon.wake(Wake("tick"))
        return Restart(
            resource=resource, requestedAt=now, maxUnavailable=policy.rollout.max_unavailable
        )

    @app.post(
        "/v1/api/orchestrations/{resource}/confirm",
        response_model=Confirmation,
        dependencies=[Depends(require_token)],
        responses=_errors(401, 403, 404, 409, 503),
        summary="Let the kind's plan held by the safety valve go ahead",
    )
    def confirm(resource: str) -> Confirmation:
        """The safety valve holds a plan that would unassign a large share of the kind's ids
        or delete many pods (`status` says why). This lets it go ahead on the next pass."""
        policy_of(resource)
        refuse_on_standby()
        valve = daemon.state.valve(resource)
        if not daemon.state.valve_confirm(resource):
            raise HTTPException(409, f"nothing of {resource} is held by the safety valve")
        daemon.wake(Wake("tick"))
        return Confirmation(resource=resource, confirmed=str(valve["reason"]))

    @app.get(
        "/v1/api/orchestrations/{resource}",
        response_model=Orchestration,
        responses=_errors(404),
        summary="The kind's current orchestration (as the last pass left it)",
    )
    def get_orchestration(resource: str) -> Any:
        policy_of(resource)
        return read.orchestration(resource)

    @app.get(
        "/v1/api/orchestrations/{resource}/{id}/instances",
        response_model=RunIn,
        responses=_errors(404),
        summary="The instance that serves resource id `:id`",
    )
    def run_in(resource: str, id: str) -> RunIn:
        policy_of(resource)
        instance = read.run_in(resource, id)
        if instance is None:
            raise HTTPException(404, f"{resource} {id!r} is not assigned to any instance")
        return RunIn(runIn=instance)

    @app.get("/v1/status", summary="What `reconciler status` prints")
    def status() -> dict[str, Any]:
        return read.status()

    @app.get("/healthz", response_class=PlainTextResponse, summary="Alive: the loop progresses")
    def healthz() -> PlainTextResponse:
        problem = daemon.liveness.problem()  # None while the loop makes progress (liveness.py)
        return PlainTextResponse(problem or "ok", 503 if problem else 200)

    @app.get(
        "/readyz",
        response_model=Readiness,
        responses={503: {"model": Readiness, "description": "`problems` names what is missing"}},
        summary="Ready: policy loaded, ZooKeeper and the apiserver reachable",
    )
    def readyz() -> JSONResponse:
        ok, problems = read.ready()
        return JSONResponse(
            Readiness(ready=ok, problems=problems).model_dump(), status_code=200 if ok else 503
        )

    @app.get("/metrics", response_class=PlainTextResponse, summary="Prometheus metrics")
    def prometheus_metrics() -> PlainTextResponse:
        read.refresh_metrics()
        return PlainTextResponse(generate_latest(metrics.REGISTRY), media_type=CONTENT_TYPE_LATEST)

    from reconciler.api.operations import operations_router  # it imports this module's models

    # POST .../scale, .../stop, .../start: operators' pins (reconciler/reconcile/operations.py)
    app.include_router(operations_router(daemon, require_token, refuse_on_standby, policy_of))
    app.include_router(fleet_router(read))  # the operator's page at / (reconciler/web)
    add_cors(app, access.cors_origins)  # the old admin UI, from its own origin
    return app
