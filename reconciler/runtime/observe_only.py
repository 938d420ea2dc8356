"""Observe-only (RECONCILER_OBSERVE_ONLY): what makes such a daemon unable to write, and how it
says what it is. The wiring builds it without the writers (no election, no ACL keeper, no event
recorder) and hands its ZooKeeper and pod adapters `refuse_writes` as their fence and gate:
every write is refused there, before it is sent."""

from __future__ import annotations

from collections.abc import Callable
from typing import NoReturn

from reconciler.domain.errors import NotLeader
from reconciler.telemetry import metrics
from reconciler.telemetry.logs import log


def refuse_writes(system: str) -> Callable[[], NoReturn]:
    """A ZooKeeper fence or pod gate that refuses every write. An observe-only daemon's passes
    apply nothing, so an attempt is a bug: said loudly, and counted."""

    def refuse() -> NoReturn:
        metrics.OBSERVE_ONLY_WRITES_REFUSED.labels(system).inc()
        log.error("write refused: observe-only", system=system)
        raise NotLeader(f"observe-only (RECONCILER_OBSERVE_ONLY): no {system} write")

    return refuse


def announce(observe_only: bool, identity: str) -> None:
    """Say at start whether this daemon observes only (the log and `reconciler_observe_only`)."""
    metrics.OBSERVE_ONLY.set(1 if observe_only else 0)
    if observe_only:
        log.warning(
            "observe-only",
            identity=identity,
            detail="plans every pass and writes nothing: no election, no ZooKeeper or pod "
            "write, no Kubernetes Event, no ACL change; GET /v1/plan lists what a leader would "
            "apply",
        )
