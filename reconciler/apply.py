"""The apply stage of a pass: each planned operation through a port, and what its outcome
leaves in the state (backoff, refusals, pod expectations), its metric and its log line.

A failure is retried on a later pass with backoff, an expected refusal (`NotYet`) on the next
pass without, a `Terminal` one not at all until the operation changes. Pods are
level-triggered: a dead pod is deleted (uid precondition) and its successor created by a later
pass, woken by the watch; nothing waits here.
"""

from __future__ import annotations

from collections.abc import Mapping

from reconciler import metrics
from reconciler.logs import log
from reconciler.model import (
    AdoptPod,
    CreatePod,
    DeleteInstance,
    DeletePod,
    Op,
    Outcome,
    Plan,
    RecreatePod,
    WriteInstance,
    pod_name,
)
from reconciler.policy import KindPolicy
from reconciler.ports import NotYet, PodEvents, Ports, Terminal
from reconciler.reporting import op_fields, pod_event
from reconciler.state import DaemonState

# --- apply -----------------------------------------------------------------------------


def apply(
    ports: Ports, state: DaemonState, policies: Mapping[str, KindPolicy], the_plan: Plan
) -> list[Outcome]:
    now = ports.mono()
    outcomes: list[Outcome] = []
    failed_instances: set[tuple[str, int]] = set()
    creates: list[CreatePod] = []
    for op in the_plan.ops:
        why = state.skip_reason(op, now)
        if why is not None:
            outcomes.append(Outcome(op, "skipped", why))
            continue
        if isinstance(op, CreatePod):
            if (op.kind, op.instance_id) in failed_instances:
                # Its znodes were not written: a worker started now would find no shard.
                outcomes.append(Outcome(op, "skipped", "instance write failed"))
            else:
                creates.append(op)
            continue
        outcome = _apply_one(ports, op)
        outcomes.append(outcome)
        if outcome.result == "failed" and isinstance(op, WriteInstance):
            failed_instances.add((op.kind, op.instance.instance_id))
    outcomes.extend(_create_pods(ports, creates))
    for outcome in outcomes:
        _remember(state, policies, outcome, now, ports.events)
    return outcomes


def _apply_one(ports: Ports, op: Op) -> Outcome:
    try:
        if isinstance(op, WriteInstance):
            ports.store.write_instance(op.kind, op.instance, create=op.create)
        elif isinstance(op, DeleteInstance):
            ports.store.delete_instance(op.kind, op.instance_id)
            if ports.heartbeats is not None:
                # A later instance under the same id must not inherit its last heartbeat.
                ports.heartbeats.forget(op.kind, op.instance_id)
        elif isinstance(op, DeletePod):
            ports.pods.delete_pod(op.kind, op.pod_name, uid=op.uid or None)
        elif isinstance(op, RecreatePod):
            # This incarnation only; its successor comes on a later pass (level-triggered).
            ports.pods.delete_pod(op.kind, op.pod_name, uid=op.uid or None)
        elif isinstance(op, AdoptPod):
            ports.pods.adopt_pod(op.kind, op.pod_name, op.instance_id, uid=op.uid or None)
        else:  # CreatePod goes through _create_pods, in slow-start batches
            raise TypeError(f"unexpected operation {op!r}")
    except Exception as e:  # every failure is reported, never fatal
        return _failure(op, e)
    return Outcome(op, "ok")


def _failure(op: Op, e: BaseException) -> Outcome:
    error = f"{type(e).__name__}: {e}"
    if isinstance(e, NotYet):
        return Outcome(op, "pending", error)
    return Outcome(op, "failed", error, retry=not isinstance(e, Terminal))


def _create_pods(ports: Ports, creates: list[CreatePod]) -> list[Outcome]:
    """Pod creates of one pass, per kind in slow-start batches (1, 2, 4 ...)."""
    outcomes: list[Outcome] = []
    by_kind: dict[str, list[CreatePod]] = {}
    for op in creates:
        by_kind.setdefault(op.kind, []).append(op)
    for kind, ops in by_kind.items():
        try:
            result = ports.pods.create_pods(kind, [op.instance_id for op in ops])
        except Exception as e:  # the adapter itself broke: report, retry next pass
            outcomes.extend(_failure(op, e) for op in ops)
            continue
        outcomes.extend(Outcome(ops[i], "ok") for i, _ in result.succeeded)
        outcomes.extend(_failure(ops[i], e) for i, e in result.failed)
        outcomes.extend(
            Outcome(ops[i], "skipped", "slow start stopped after a failed batch")
            for i in result.skipped
        )
    return outcomes


def _remember(
    state: DaemonState,
    policies: Mapping[str, KindPolicy],
    outcome: Outcome,
    now: float,
    events: PodEvents | None,
) -> None:
    """Backoff, refusals and pod expectations for one outcome; its metric and log line."""
    op = outcome.op
    metrics.OPERATIONS.labels(op.kind, type(op).__name__, outcome.result).inc()
    retry_in = state.op_done(outcome, now)
    if outcome.result == "skipped":
        return
    fields = op_fields(op)
    if outcome.result == "failed":
        if outcome.retry:
            log.warning("operation failed", **fields, error=outcome.error, retry_in=retry_in)
        else:
            log.error("operation refused", **fields, error=outcome.error, retry="never")
        return
    if outcome.result == "ok":
        if isinstance(op, CreatePod) and op.kind in policies:
            name = pod_name(policies[op.kind].instance_name, op.instance_id)
            state.expect_created(op.kind, name, op.instance_id, now)
        elif isinstance(op, RecreatePod | DeletePod):
            # A pass woken before the watch shows it going must not delete it again.
            state.expect_deleted(op.kind, op.pod_name, op.uid, now)
        if events is not None and op.kind in policies:
            pod_event(events, policies[op.kind], op)
    log.info("operation applied" if outcome.result == "ok" else "operation pending", **fields)
