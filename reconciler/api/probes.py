"""What watches the daemon reads: `/v1/status` (what `reconciler status` prints), `/healthz`
(the loop progresses), `/readyz` (policy loaded, servers reachable) and `/metrics`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from reconciler.api.schemas import Readiness
from reconciler.runtime.control import Control
from reconciler.telemetry import metrics


def probes_router(control: Control) -> APIRouter:
    router = APIRouter()
    read = control.read

    @router.get("/v1/status", summary="What `reconciler status` prints")
    def status() -> dict[str, Any]:
        return read.status()

    @router.get("/healthz", response_class=PlainTextResponse, summary="Alive: the loop progresses")
    def healthz() -> PlainTextResponse:
        problem = control.liveness_problem()
        return PlainTextResponse(problem or "ok", 503 if problem else 200)

    @router.get(
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

    @router.get("/metrics", response_class=PlainTextResponse, summary="Prometheus metrics")
    def prometheus_metrics() -> PlainTextResponse:
        read.refresh_metrics()
        return PlainTextResponse(generate_latest(metrics.REGISTRY), media_type=CONTENT_TYPE_LATEST)

    return router
