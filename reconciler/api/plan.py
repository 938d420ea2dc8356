"""`GET /v1/plan`: what a leader would apply now, per kind, with reasons
(reconciler/runtime/pending.py). A read, open like `/v1/status`: it changes nothing."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from reconciler.runtime.control import Control


def plan_router(control: Control) -> APIRouter:
    router = APIRouter()

    @router.get("/v1/plan", summary="Pending operations per kind (what a leader would apply now)")
    def pending_plan() -> dict[str, Any]:
        """Per kind, the operations the last pass over it planned and did not carry out: on an
        observe-only daemon or a standby every operation it planned (nothing is applied there),
        on the leader those that failed or were left for a later pass. Each names its type
        (`WriteInstance`, `DeleteInstance`, `CreatePod`, `DeletePod`, `RecreatePod`,
        `AdoptPod`), its reason, its target (instance, pod, uid) and counts; the kind names
        the pass it came from and the sources it could not read (`partial`). The same
        document as `reconciler plan --output json`."""
        return control.plan()

    return router
