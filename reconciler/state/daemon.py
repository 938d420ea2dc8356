"""What the daemon knows between passes: the only mutable object shared by loop, REST and status.

It is assembled from parts, each owned by the stage that writes it (as kopf keeps a memory
per object), so a stage's writes go through its own part:

    policy     the policy in force               the policy loader (runtime/policy_watch.py)
    rows       rows per kind                     observe's reads, the loop's row hints
    sources    sources each kind cannot read     observe
    turns      the order observe reads kinds in  observe
    pins       operators' pins                   observe's reads, operators (pin_kind)
    requests   rebalances, overrides, restarts   operators through REST
    sizing     autoscaler targets, last sizing   intend, record
    valves     the safety valve of each kind     guard, operators' confirmations
    pods       expectations, pod starts, lists   apply, observe
    retries    backoff and terminal refusals     apply
    world      what the last pass saw and left   record
    last       the last pass and its reports     record

REST threads, the MQTT thread and the loop thread all touch it, so the parts share one
re-entrant lock (state/part.py); the few transitions that span parts (a new policy, an
operator's pin, recording a pass) and the reads that combine them hold it across the parts.
Readers (REST, `status`, /metrics) get a `StateView`: a read-only snapshot taken under the
lock, so a pass on the loop thread never races a reader.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping

from reconciler.domain.model import KindIntent, KindObserved, PassResult
from reconciler.domain.pins import Pin
from reconciler.domain.podspec import PodTemplate
from reconciler.policy.schema import KindPolicy, LoadedPolicy, effective
from reconciler.rules.plan_memo import IdPlanMemo
from reconciler.state.last_pass import LastPass
from reconciler.state.pins import KnownPins
from reconciler.state.pods import PodMemory
from reconciler.state.policy_memory import PolicyInForce
from reconciler.state.requests import OperatorRequests
from reconciler.state.retries import OpRetries
from reconciler.state.rows import KnownRows
from reconciler.state.sizing import SizingMemory
from reconciler.state.snapshot import StateView, read_only
from reconciler.state.sources import SourceHealth
from reconciler.state.turns import ObserveTurns
from reconciler.state.valves import Valves
from reconciler.state.world import LastWorld

__all__ = ["DaemonState", "StateView"]  # StateView lives in reconciler.state.snapshot


class DaemonState:
    def __init__(self) -> None:
        self._lock = threading.RLock()
        lock = self._lock
        self.policy = PolicyInForce(lock)
        self.rows = KnownRows(lock)
        self.sources = SourceHealth(lock)
        self.turns = ObserveTurns(lock)
        self.pins = KnownPins(lock)
        self.requests = OperatorRequests(lock)
        self.sizing = SizingMemory(lock)
        self.valves = Valves(lock)
        self.pods = PodMemory(lock)
        self.retries = OpRetries(lock)
        self.world = LastWorld(lock)
        self.last = LastPass(lock)
        # The planner's cache of each kind's last id plan (rules/plan_memo.py): only the thread
        # that runs passes touches it, so it needs no lock.
        self.plan_memo = IdPlanMemo()

    # --- transitions across parts ----------------------------------------------------------

    def policy_accepted(
        self,
        loaded: LoadedPolicy,
        templates: dict[str, PodTemplate],
        *,
        keep_overrides: bool = False,
    ) -> None:
        """A new policy is in force: REST overrides end with it (docs/operations.md), refusals of
        operations planned under the old one may be tried again, and a kind taken out of the
        policy is read no more (its source errors would stay for good)."""
        with self._lock:
            self.policy.accept(loaded, templates)
            self.sources.keep_kinds(loaded.policy.kinds)
            if not keep_overrides:
                self.requests.end_overrides()
            self.retries.forget_refusals()

    def set_pin(self, kind: str, pin: Pin | None) -> None:
        """An operator pinned `kind` (None: unpinned, `start`), already written to ZooKeeper.
        Asking is confirming: the safety valve lets the plan this leads to go ahead."""
        with self._lock:
            self.pins.set(kind, pin)
            self.valves.authorize(kind)

    def record_pass(
        self, result: PassResult, observed: Mapping[str, KindObserved], at: float
    ) -> None:
        """Remember a pass: what it saw, the assignment its successful writes left, its plan's
        reports; a kind whose operations all went through has had its rebalance, and has
        used an operator's authorization of its plan. Not a kind blind to its assignment
        (unreadable, or left unread by the budget): nothing was planned for it."""
        with self._lock:
            self.world.record(result, observed)
            for kind, obs in observed.items():
                # none failed, none left by the budget
                if obs.assignment is not None and not result.unfinished(kind):
                    self.requests.rebalanced(kind)
                    if not result.standby:
                        self.valves.carried_out(kind)
            self.last.record(result, at)

    # --- reads across parts ----------------------------------------------------------------

    def policies(self) -> dict[str, KindPolicy]:
        """Each kind's policy with the operators' REST overrides merged in."""
        with self._lock:
            loaded = self.policy.loaded
            if loaded is None:
                return {}
            return {
                kind: effective(p, self.requests.overrides(kind))
                for kind, p in loaded.policy.kinds.items()
            }

    def intents(self, policies: Mapping[str, KindPolicy]) -> dict[str, KindIntent]:
        """What operators and the autoscaler want of each kind, beside the observation."""
        with self._lock:
            intents: dict[str, KindIntent] = {}
            for kind, p in policies.items():
                pin = self.pins.pinned(kind)
                intents[kind] = KindIntent(
                    scale_target=self.sizing.target(kind),
                    rebalance=self.requests.rebalance_asked(kind),
                    resize=self.sizing.resize_due(kind, p, pin),
                    revision=self.policy.revision(kind),
                    restart_uids=self.requests.restart_uids(kind),
                    max_unavailable=p.rollout.max_unavailable,
                    pinned=pin.instances if pin is not None else None,
                )
            return intents

    def view(self) -> StateView:
        """A read-only snapshot of every part at one instant, for the read side."""
        with self._lock:
            policies = self.policies()
            return StateView(
                loaded=self.policy.loaded,
                policy_error=self.policy.error,
                policies=read_only(policies),
                overrides=read_only(
                    {k: read_only(v) for k, v in self.requests.all_overrides().items()}
                ),
                assignments=read_only(
                    {k: read_only(v) for k, v in self.world.assignments().items()}
                ),
                reports=read_only(self.last.reports()),
                observed_pods=read_only(
                    {
                        k: None if p is None else read_only(dict(p))
                        for k, p in self.world.pods().items()
                    }
                ),
                known_rows=read_only(self.rows.counts()),
                source_errors=read_only(self.sources.by_source()),
                last_pass=self.last.result,
                last_pass_at=self.last.at,
                degraded=read_only({k: read_only(self.sources.degraded(k)) for k in policies}),
                valves=read_only({k: read_only(self.valves.summary(k)) for k in policies}),
                pins=read_only(self.pins.all()),
            )

    # --- what REST asks for (runtime/control.py), kept here for its narrow interface --------

    def row_count(self, kind: str) -> int | None:
        return self.rows.count(kind)

    def request_rebalance(self, kind: str, overrides: Mapping[str, int] | None = None) -> None:
        self.requests.request_rebalance(kind, overrides)

    def request_restart(self, kind: str) -> None:
        self.requests.request_restart(kind)

    def valve(self, kind: str) -> dict[str, object]:
        return self.valves.summary(kind)

    def valve_confirm(self, kind: str) -> bool:
        return self.valves.confirm(kind)
