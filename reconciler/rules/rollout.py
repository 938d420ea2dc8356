"""Rolling replacement of outdated pods: one at a time (or `max_unavailable`), the next only
once the new one is Running, and heard from when its kind has heartbeats. Pure.

A pod is outdated when it was rendered from another revision of the kind's template (the
`reconciler.iota/revision` annotation; a pod without one, made before revisions were stamped
or by the old orchestrator, counts as current), or when it already existed when an operator
asked for a rolling restart (by uid: pod start times have whole-second resolution). Like a
Deployment's RollingUpdate with maxSurge 0: a pod's name is its instance's, so the old one goes
before the new one comes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from reconciler.domain.model import Heartbeats, KindIntent, Op, Pod, Reason, RecreatePod, pod_name


def outdated(pod: Pod, intent: KindIntent) -> bool:
    if intent.revision and pod.revision and pod.revision != intent.revision:
        return True
    return bool(pod.uid) and pod.uid in intent.restart_uids


def available(pod: Pod | None, instance_id: int, heartbeats: Heartbeats | None) -> bool:
    """Serving: Running, not going away, and (heartbeats on) heard since it started."""
    if pod is None or pod.terminating or pod.phase != "Running":
        return False
    if heartbeats is None or not heartbeats.connected or pod.started_at is None:
        return True
    return heartbeats.last_seen.get(instance_id, 0.0) >= pod.started_at


def roll(
    kind: str,
    instance_name: str,
    instances: Iterable[int],
    pods: Mapping[str, Pod],
    intent: KindIntent,
    heartbeats: Heartbeats | None,
    planned: Iterable[Op],
) -> list[Op]:
    """The outdated pods to replace in this pass, within the unavailability budget."""
    if not intent.revision and not intent.restart_uids:
        return []
    touched = {getattr(op, "instance_id", None) for op in planned}
    unavailable = 0
    candidates: list[tuple[int, Pod]] = []
    for i in sorted(instances):
        pod = pods.get(pod_name(instance_name, i))
        if i in touched or not available(pod, i, heartbeats):
            unavailable += 1
        elif pod is not None and outdated(pod, intent):
            candidates.append((i, pod))
    budget = max(0, intent.max_unavailable - unavailable)
    return [
        RecreatePod(kind, pod.name, i, Reason.OUTDATED, pod.uid) for i, pod in candidates[:budget]
    ]
