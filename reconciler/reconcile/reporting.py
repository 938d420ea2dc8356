"""How an applied operation is told: its log fields and its Kubernetes Event; and the
Event when the namespace's ResourceQuota leaves ids unassigned.

Pure formatting over `reconciler.domain.model` ops; the pipeline calls these after each outcome.
"""

from __future__ import annotations

from reconciler.domain.model import (
    AdoptPod,
    CreatePod,
    DeleteInstance,
    DeletePod,
    KindReport,
    Op,
    RecreatePod,
    WriteInstance,
    pod_name,
)
from reconciler.policy.schema import KindPolicy
from reconciler.reconcile.ports import PodEvents
from reconciler.rules.capacity import QUOTA_ERROR

# What a pod operation is called in its Kubernetes Event: (action, note).
_POD_EVENT = {
    CreatePod: ("Create", "created the instance's pod"),
    RecreatePod: ("Delete", "deleted this pod; a successor is created once it is gone"),
    DeletePod: ("Delete", "deleted: no instance needs this pod"),
    AdoptPod: ("Adopt", "added the reconciler's labels to a pod found by its name"),
}


def pod_event(events: PodEvents, policy: KindPolicy, op: Op) -> None:
    """A Kubernetes Event on the pod an applied operation touched (reason: PodMissing,
    PodDead, HeartbeatSilent, ScaleDown, Orphan, Unlabelled)."""
    what = _POD_EVENT.get(type(op))
    if what is None:
        return
    if isinstance(op, CreatePod):
        name = pod_name(policy.instance_name, op.instance_id)
    elif isinstance(op, DeletePod | RecreatePod | AdoptPod):
        name = op.pod_name
    else:
        return
    reason = "".join(part.capitalize() for part in str(op.reason).split("-"))
    uid = getattr(op, "uid", "") or None
    events.pod_event(
        op.kind, policy.namespace, name, what[0], reason, f"{op.kind}: {what[1]}", uid=uid
    )


def quota_event(events: PodEvents, policy: KindPolicy, report: KindReport) -> None:
    """A Warning Event when the namespace's ResourceQuota leaves ids unassigned
    (capacity.admit_sizing), on the pod the next instance would have had (reason
    QuotaExceeded): `kubectl get events` shows it beside the pods that do exist."""
    if not report.error or not report.error.startswith(QUOTA_ERROR):
        return
    name = pod_name(policy.instance_name, report.instances)
    note = f"{report.kind}: {report.error}"
    events.pod_event(
        report.kind, policy.namespace, name, "Create", "QuotaExceeded", note, event_type="Warning"
    )


def op_fields(op: Op) -> dict[str, object]:
    """An operation as log fields."""
    fields: dict[str, object] = {
        "op": type(op).__name__,
        "resource": op.kind,
        "reason": str(op.reason),
    }
    if isinstance(op, WriteInstance):
        fields.update(
            instance_id=op.instance.instance_id,
            used=op.instance.used,
            count=op.instance.count,
            reload_times=op.instance.reload_times,
        )
    elif isinstance(op, DeleteInstance | CreatePod | DeletePod | RecreatePod | AdoptPod):
        # DeletePod: None for a pod without an instanceId label (an orphan).
        fields["instance_id"] = op.instance_id
    if isinstance(op, DeletePod | RecreatePod | AdoptPod):
        fields["pod"] = op.pod_name
    return fields
