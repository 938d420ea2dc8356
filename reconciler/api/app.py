"""REST: the old admin UI's paths (docs/contracts.md "REST API"), the daemon's status, health
probes and /metrics, and the fleet page, as routers by concern on one FastAPI app.

FastAPI (with uvicorn, in a thread beside the loop) rather than a hand-written server: it
validates parameters into 4xx answers that name the field and publishes the OpenAPI document
the UI team and the fuzz tests read. Every route reaches the daemon through `Control`
(reconciler/runtime/control.py), never through its fields.

Around the routes, outermost first: CORS (`access.py`), the request guard (`guard.py`: who
asks, how much, how many), and a standby's forwarding of writes to the leader (`forward.py`).
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from reconciler.api.access import BrowserAccess, add_cors
from reconciler.api.auth import Authorizer
from reconciler.api.forward import LeaderForwarding
from reconciler.api.guard import MAX_BODY_BYTES, MAX_CONCURRENT, RequestGuard
from reconciler.api.operations import operations_router
from reconciler.api.orchestrations import orchestrations_router
from reconciler.api.plan import plan_router
from reconciler.api.probes import probes_router
from reconciler.api.schemas import ErrorBody, FieldError, bad_request
from reconciler.api.web.routes import fleet_router
from reconciler.runtime.control import Control


def create_app(
    control: Control,
    token: str | None = None,
    access: BrowserAccess | None = None,
    *,
    max_body_bytes: int = MAX_BODY_BYTES,
    max_concurrent: int = MAX_CONCURRENT,
) -> FastAPI:
    """The REST app. `token`: RECONCILER_API_TOKEN; `access`: CORS origins and the trusted
    proxy header (`BrowserAccess.from_settings`); None keeps both off. The limits: see
    `reconciler/api/guard.py` (RECONCILER_API_MAX_BODY_BYTES, RECONCILER_API_MAX_CONCURRENT)."""
    access = access or BrowserAccess()
    auth = Authorizer(token, access)
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
    # Inside the guard (added first, so innermost): only an authorised request of an allowed
    # size is sent on to the leader.
    app.add_middleware(LeaderForwarding, control=control, auth=auth)
    app.add_middleware(
        RequestGuard,
        authorise=auth.authorise,
        max_body_bytes=max_body_bytes,
        max_concurrent=max_concurrent,
    )
    app.add_exception_handler(RequestValidationError, _bad_parameters)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]
    app.include_router(orchestrations_router(control, auth.require_token))
    app.include_router(operations_router(control, auth.require_token))  # scale, stop, start
    app.include_router(probes_router(control))
    app.include_router(plan_router(control))  # GET /v1/plan, open like /v1/status
    app.include_router(fleet_router(control.read))  # the operator's page at /
    add_cors(app, access.cors_origins)  # the old admin UI, from its own origin
    return app


async def _bad_parameters(_: Request, exc: RequestValidationError) -> JSONResponse:
    """400 as the old API answered, naming each offending field."""
    errors = []
    for e in exc.errors():
        path = [str(p) for p in e["loc"] if p != "body"]
        if e.get("type") == "json_invalid":
            path = []  # loc holds the byte offset, not a field
        errors.append(FieldError(field=".".join(path) or "body", message=str(e["msg"])))
    return bad_request(errors)


async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
    return JSONResponse(
        ErrorBody(error=str(exc.detail)).model_dump(exclude_none=True),
        status_code=exc.status_code,
        headers=exc.headers,
    )
