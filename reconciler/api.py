"""REST: the old admin UI's paths (SPEC.md), the daemon's status, health probes and /metrics.

FastAPI (with uvicorn, in a thread beside the loop) rather than a hand-written server: it
validates parameters into 4xx answers that name the field and publishes the OpenAPI document
the UI team and the fuzz tests read.
"""

from __future__ import annotations

import secrets
import threading
from typing import Annotated, Any

import uvicorn
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ConfigDict, Field

from reconciler import metrics
from reconciler.loop import Daemon
from reconciler.model import Assignment
from reconciler.policy import KindPolicy, PolicyError, effective


class OrchestrateBody(BaseModel):
    """Overrides for this kind until policy.yaml next changes (SPEC.md ranges)."""

    model_config = ConfigDict(extra="forbid")
    maxInstances: Annotated[int, Field(ge=3, le=100)] | None = None
    resourcePerInstance: Annotated[int, Field(ge=1, le=5000)] | None = None


class RunIn(BaseModel):
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


def orchestration_of(
    kind: str, policy: KindPolicy, assignment: Assignment, unassigned: int | None, error: str | None
) -> Orchestration:
    return Orchestration(
        resource=kind,
        maxInstances=policy.max_instances,
        resourcePerInstance=policy.resource_per_instance,
        instances=[
            InstanceView(
                instanceId=str(i), used=inst.used, count=inst.count, resources=sorted(inst.ids)
            )
            for i, inst in sorted(assignment.items())
        ],
        unassigned=unassigned,
        error=error,
    )


def create_app(daemon: Daemon, token: str | None = None) -> FastAPI:
    app = FastAPI(title="reconciler", version="1", summary="Shards, sizes and heals IoT workers")
    bearer = HTTPBearer(auto_error=False)

    def require_token(
        creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> None:
        if token is None:
            return
        if creds is None or not secrets.compare_digest(creds.credentials, token):
            raise HTTPException(
                401, "a bearer token is required", headers={"WWW-Authenticate": "Bearer"}
            )

    def policy_of(resource: str) -> KindPolicy:
        policy = daemon.policies().get(resource)
        if policy is None:
            known = ", ".join(sorted(daemon.policies())) or "none"
            raise HTTPException(404, f"unknown resource {resource!r} (known: {known})")
        return policy

    @app.exception_handler(RequestValidationError)
    async def bad_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        # 400 as the old API answered, naming each offending field.
        errors = [
            {"field": ".".join(str(p) for p in e["loc"] if p != "body"), "message": e["msg"]}
            for e in exc.errors()
        ]
        return JSONResponse({"error": "invalid request", "errors": errors}, status_code=400)

    @app.post(
        "/v1/api/orchestrations/{resource}/orchestrate",
        response_model=Orchestration,
        dependencies=[Depends(require_token)],
        responses={400: {}, 401: {}, 404: {}, 503: {}},
    )
    def orchestrate(resource: str, body: OrchestrateBody | None = None) -> Orchestration:
        policy = policy_of(resource)
        overrides = body.model_dump(exclude_none=True) if body else {}
        try:
            merged = effective(policy, overrides)
        except PolicyError as e:
            raise HTTPException(400, str(e)) from e
        except ValueError as e:  # e.g. maxInstances below initInstances
            raise HTTPException(400, str(e).splitlines()[-1]) from e
        try:
            result = daemon.orchestrate(resource, overrides)
        except Exception as e:
            raise HTTPException(503, f"orchestration did not run: {e}") from e
        failed = [o.error for o in result.failed if o.op.kind == resource]
        if failed:
            raise HTTPException(503, f"orchestration incomplete: {failed[0]}")
        report = result.plan.reports.get(resource)
        return orchestration_of(
            resource,
            merged,
            daemon.reconciler.assignments.get(resource, {}),
            report.unassigned if report else None,
            report.error if report else None,
        )

    @app.get("/v1/api/orchestrations/{resource}", response_model=Orchestration, responses={404: {}})
    def get_orchestration(resource: str) -> Orchestration:
        policy = policy_of(resource)
        report = daemon.reconciler.last_reports.get(resource)
        return orchestration_of(
            resource,
            policy,
            daemon.reconciler.assignments.get(resource, {}),
            report.unassigned if report else None,
            report.error if report else None,
        )

    @app.get(
        "/v1/api/orchestrations/{resource}/{id}/instances",
        response_model=RunIn,
        responses={404: {}},
    )
    def run_in(resource: str, id: str) -> RunIn:
        policy_of(resource)
        for i, inst in daemon.reconciler.assignments.get(resource, {}).items():
            if id in inst.ids:
                return RunIn(runIn=str(i))
        raise HTTPException(404, f"{resource} {id!r} is not assigned to any instance")

    @app.get("/v1/status")
    def status() -> dict[str, Any]:
        return daemon.status()

    @app.get("/healthz", response_class=PlainTextResponse)
    def healthz() -> str:
        return "ok"

    @app.get("/readyz", responses={503: {}})
    def readyz() -> JSONResponse:
        ok, problems = daemon.ready()
        return JSONResponse({"ready": ok, "problems": problems}, status_code=200 if ok else 503)

    @app.get("/metrics", response_class=PlainTextResponse)
    def prometheus_metrics() -> PlainTextResponse:
        return PlainTextResponse(generate_latest(metrics.REGISTRY), media_type=CONTENT_TYPE_LATEST)

    return app


class ApiServer:
    """uvicorn in a daemon thread; stop() shuts it down gracefully."""

    def __init__(self, app: FastAPI, host: str, port: int) -> None:
        config = uvicorn.Config(
            app, host=host, port=port, log_config=None, access_log=False, lifespan="off"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="api", daemon=True)

    def start(self, timeout: float = 10.0) -> None:
        self.thread.start()
        deadline = threading.Event()
        for _ in range(int(timeout / 0.05)):
            if self.server.started:
                return
            deadline.wait(0.05)
        raise RuntimeError("the REST API did not start")

    @property
    def port(self) -> int:
        sockets = [s for server in self.server.servers for s in server.sockets]
        return sockets[0].getsockname()[1] if sockets else self.server.config.port

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
