"""How an applied operation is told: its log fields and its Kubernetes Event.

Pure formatting over `reconciler.domain.model` ops; the pipeline calls these after each outcome.
"""

from __future__ import annotations

from reconciler.domain.model import (
    AdoptPod,
    CreatePod,
    DeleteInstance,
    DeletePod,
    Op,
    RecreatePod,
    WriteInstance,
    pod_name,
)
from reconciler.policy.schema import KindPolicy
from reconciler.reconcile.ports import PodEvents

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
