"""The read side: `reconciler status`, /v1/status, the REST GETs, /readyz and scrape-time gauges.

Everything here renders one `StateView` (a consistent copy of the daemon's state) plus what is
live between passes: the pod watch's current pods and each instance's heartbeat age, read now
rather than as of the last pass, so an operator sees the world as it is. Nothing here writes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reconciler.domain.model import Pod, pod_name
from reconciler.policy.schema import KindPolicy
from reconciler.reconcile.pass_ports import Ports
from reconciler.state.daemon import DaemonState, StateView
from reconciler.telemetry import metrics


@dataclass
class ReadSide:
    state: DaemonState
    ports: Ports
    policy_path: Path
    # Extra health checks for /readyz: name -> "is it reachable" (ZooKeeper, apiserver).
    readiness: dict[str, Callable[[], bool]] = field(default_factory=dict)
    wall: Callable[[], float] = time.time

    # --- the old UI's GETs ---------------------------------------------------------------

    def policy(self, kind: str) -> KindPolicy | None:
        return self.state.policies().get(kind)

    def kinds(self) -> list[str]:
        return sorted(self.state.policies())

    def orchestration(self, kind: str) -> dict[str, Any] | None:
        """GET /v1/api/orchestrations/:resource, as the last pass left it; None: unknown kind."""
        view = self.state.view()
        policy = view.policies.get(kind)
        if policy is None:
            return None
        report = view.reports.get(kind)
        return {
            "resource": kind,
            "maxInstances": policy.max_instances,
            "resourcePerInstance": policy.resource_per_instance,
            "instances": [
                {
                    "instanceId": str(i),
                    "used": inst.used,
                    "count": inst.count,
                    "resources": sorted(inst.ids),
                }
                for i, inst in sorted(view.assignments.get(kind, {}).items())
            ],
            "unassigned": report.unassigned if report else None,
            "error": report.error if report else None,
        }

    def run_in(self, kind: str, resource_id: str) -> str | None:
        """The instance that serves `resource_id`, or None."""
        for i, inst in (self.state.world.assignment(kind) or {}).items():
            if resource_id in inst.ids:
                return str(i)
        return None

    # --- status ---------------------------------------------------------------------------

    def heartbeat_ages(self, view: StateView, kind: str, now: float) -> dict[int, float]:
        """Seconds since each current instance of `kind` was last heard, read live."""
        source = self.ports.heartbeats
        policy = view.policies.get(kind)
        if source is None or policy is None or not policy.heartbeat.enabled:
            return {}
        current = view.assignments.get(kind, {})
        seen = source.snapshot(kind).last_seen
        return {i: now - t for i, t in seen.items() if i in current}

    def pods_now(self, view: StateView, kind: str) -> Mapping[str, Pod] | None:
        """The watch's current pods, else those the last pass saw."""
        cache = self.ports.pod_cache
        live = cache.pods(kind) if cache is not None else None
        return live if live is not None else view.observed_pods.get(kind)

    def status(self) -> dict[str, Any]:
        view = self.state.view()
        now = self.wall()
        autoscaler = self.ports.autoscaler
        kinds: dict[str, Any] = {}
        for kind, policy in view.policies.items():
            report = view.reports.get(kind)
            assignment = view.assignments.get(kind, {})
            pods = self.pods_now(view, kind) or {}
            ages = self.heartbeat_ages(view, kind, now)
            kinds[kind] = {
                "rows": report.rows if report else None,
                "instances": len(assignment),
                "capacity": report.capacity if report else None,
                "unassigned": report.unassigned if report else None,
                "error": report.error if report else None,
                "blind": list(report.blind) if report else [],
                "degraded": dict(view.degraded.get(kind, {})),
                "valve": dict(view.valves[kind]),
                "heartbeat": report.heartbeat_note if report else None,
                "autoscale": autoscaler.status(kind, policy) if autoscaler else None,
                "maxInstances": policy.max_instances,
                "resourcePerInstance": policy.resource_per_instance,
                "overrides": dict(view.overrides.get(kind, {})),
                # an operator's `scale`/`stop` (None: the policy sizes the kind)
                "pin": view.pins[kind].summary() if kind in view.pins else None,
                "instanceList": [
                    {
                        "instanceId": str(i),
                        "used": inst.used,
                        "count": inst.count,
                        "reloadTimes": inst.reload_times,
                        "pod": (name := pod_name(policy.instance_name, i)),
                        "phase": _phase(pods.get(name)),
                        "heartbeatAge": round(ages[i], 1) if i in ages else None,
                    }
                    for i, inst in sorted(assignment.items())
                ],
            }
        last = view.last_pass
        return {
            "leadership": self.leadership(),
            "policy": {
                "path": str(self.policy_path),
                "sha256": view.loaded.sha256 if view.loaded else None,
                "error": view.policy_error,
            },
            "lastPass": {
                "at": view.last_pass_at,
                "trigger": last.trigger if last else None,
                "ops": len(last.plan.ops) if last else 0,
                "failed": [o.error for o in last.failed] if last else [],
                "standby": last.standby if last else False,  # planned only, nothing applied
            },
            "sources": dict(view.source_errors),
            "kinds": kinds,
        }

    def role(self) -> str:
        """observe-only, leader or standby."""
        return str(self.leadership()["role"])

    def leadership(self) -> dict[str, Any]:
        """This daemon's role and who leads (a standby is ready: it has nothing to change). An
        observe-only daemon takes no part in the election: it knows no leader."""
        election = self.ports.leadership
        if self.ports.observe_only:
            return {
                "role": "observe-only",
                "identity": None,
                "leader": None,
                "election": False,
                "observeOnly": True,
            }
        if election is None:
            return {
                "role": "leader",
                "identity": None,
                "leader": None,
                "election": False,
                "observeOnly": False,
            }
        return {
            "role": "leader" if election.is_leader else "standby",
            "identity": election.identity,
            "leader": election.leader(),
            "election": True,
            "observeOnly": False,
            "transitions": election.transitions,
        }

    def ready(self) -> tuple[bool, dict[str, str]]:
        problems: dict[str, str] = {}
        in_force = self.state.policy
        if in_force.loaded is None:
            problems["policy"] = in_force.error or "not loaded"
        for name, check in self.readiness.items():
            try:
                if not check():
                    problems[name] = "unreachable"
            except Exception as e:
                problems[name] = str(e)
        return not problems, problems

    def refresh_metrics(self) -> None:
        """Gauges that change between passes, set at scrape time."""
        view = self.state.view()
        now = self.wall()
        election = self.ports.leadership
        if election is not None:
            metrics.LEADER.labels(election.identity).set(1 if election.is_leader else 0)
        for kind in view.policies:
            ages = self.heartbeat_ages(view, kind, now)
            metrics.publish(metrics.HEARTBEAT_AGE, kind, {(str(i),): a for i, a in ages.items()})
            pods = self.pods_now(view, kind)
            if pods is not None:
                metrics.publish(
                    metrics.POD_PHASE,
                    kind,
                    {
                        (str(p.instance_id), p.phase): 1
                        for p in pods.values()
                        if p.instance_id is not None
                    },
                )


# /readyz asks the apiserver at most this often (a probe every second must not become an
# apiserver call every second); the answer, good or bad, is reused meanwhile.
APISERVER_CHECK_SECONDS = 5.0


def cached_check(check: Callable[[], None], seconds: float) -> Callable[[], bool]:
    """A readiness check that runs `check` (raises when unhealthy) at most every `seconds`."""
    lock = threading.Lock()
    last: list[tuple[float, Exception | None]] = []

    def run() -> bool:
        with lock:
            now = time.monotonic()
            if not last or now - last[0][0] >= seconds:
                try:
                    check()
                    error: Exception | None = None
                except Exception as e:
                    error = e
                last[:] = [(now, error)]
            error = last[0][1]
        if error is not None:
            raise error
        return True

    return run


def _phase(pod: Pod | None) -> str:
    if pod is None:
        return "Missing"
    return f"{pod.phase} (terminating)" if pod.terminating else pod.phase
