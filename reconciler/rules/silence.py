"""Which workers have been silent too long to be trusted, from their Kafka heartbeats.

Part of the planner (pure, no clock of its own): `planner.plan_kind` asks it which
instances' pods to recreate as silent.
"""

from __future__ import annotations

from collections.abc import Mapping

from reconciler.domain.ids import SortedIds
from reconciler.domain.model import Heartbeats, Instance, Pod, pod_name
from reconciler.policy.schema import HeartbeatPolicy

HEARTBEATS_DISABLED = "heartbeat source disabled"


def silent_instances(
    policy: HeartbeatPolicy,
    hb: Heartbeats | None,
    pods: Mapping[str, Pod] | None,
    final: Mapping[int, SortedIds],
    now: float,
    instance_name: str,
    assignment: Mapping[int, Instance] | None = None,
) -> tuple[str | None, set[int]]:
    """Instances whose running pod has been silent too long, and a note when none can be.

    Silence is only believed while the heartbeat source itself is healthy: when Kafka is
    down, or nobody at all has been heard lately, every worker would look dead (the old
    orchestrator then killed the whole fleet). An instance whose worker holds a live
    ZooKeeper session (an ephemeral node under its `tmp`, `Instance.worker_session`) is
    never silent, whatever Kafka says.
    """
    if not policy.enabled:
        return None, set()
    if hb is None:
        return f"{HEARTBEATS_DISABLED}: silence is not acted on", set()
    if not hb.connected and hb.connected_since is None:
        # Joining the consumer group takes seconds after start: not (yet) an outage.
        return "heartbeat source not reached yet: silence is not acted on", set()
    if not hb.connected:
        return "heartbeat source unreachable: silence is not acted on", set()
    if pods is None:
        return "pods unknown: silence is not acted on", set()
    timeout = policy.timeout_seconds
    # Judged as of the broker's last answer: a worker is never silent for longer than Kafka
    # was proven to be listening.
    now = now if hb.answered_at is None else min(now, hb.answered_at)
    since = hb.connected_since if hb.connected_since is not None else now
    if now - since < timeout:
        return None, set()  # not listening long enough to call anyone silent
    newest = max(hb.last_seen.values(), default=None)
    if final and (newest is None or now - newest > timeout):
        return f"no instance heard for {timeout:g}s: silence is not acted on", set()
    silent: set[int] = set()
    live = {i for i, inst in (assignment or {}).items() if inst.worker_session}
    for i in final:
        if i in live:
            continue  # its worker's ZooKeeper session is alive
        pod = pods.get(pod_name(instance_name, i))
        if pod is None or pod.phase != "Running" or pod.terminating:
            continue
        started = pod.started_at if pod.started_at is not None else now
        if now - started < max(policy.grace_seconds, timeout):
            continue
        last = max(hb.last_seen.get(i, since), since, started)
        if now - last > timeout:
            silent.add(i)
    return None, silent
