"""What the daemon knows between passes: the only mutable object shared by loop, REST and status.

A pass (`reconciler.reconcile.pipeline`) is a pipeline of plain functions; everything it must
remember
for the next one lives here, behind methods: the policy in force, the last rows read per
kind (patched by row events meanwhile), operators' and the autoscaler's intent, what the last
pass saw and left, per-operation backoff, terminal refusals, pod expectations, source health.
Nobody else touches the fields. Readers (REST, `status`, /metrics) get a `StateView`: a
consistent copy taken under the lock, so a pass on the loop thread never races a reader.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field

from reconciler.domain.ids import share
from reconciler.domain.model import (
    Assignment,
    KindIntent,
    KindObserved,
    KindReport,
    Op,
    Outcome,
    PassResult,
    Pod,
    applied,
)
from reconciler.domain.pins import Pin
from reconciler.domain.podspec import PodTemplate, template_revision
from reconciler.policy.schema import KindPolicy, LoadedPolicy, effective
from reconciler.rules.plan_memo import IdPlanMemo
from reconciler.rules.valve import ValveState
from reconciler.state.expectations import PodExpectations
from reconciler.state.pod_starts import PodStarts
from reconciler.state.retries import OpRetries
from reconciler.state.snapshot import StateView, errors_by_source

__all__ = ["DaemonState", "StateView"]  # StateView lives in reconciler.state.snapshot


def _sizing(policy: KindPolicy, pin: Pin | None) -> tuple[int, int, int, int | None]:
    pinned = pin.instances if pin is not None else None
    return (policy.init_instances, policy.max_instances, policy.resource_per_instance, pinned)


@dataclass
class DaemonState:
    _lock: threading.RLock = field(default_factory=threading.RLock)
    _loaded: LoadedPolicy | None = None
    _templates: dict[str, PodTemplate] = field(default_factory=dict)
    _policy_error: str | None = None
    # Last ids read from the database per kind, patched by row events in between reads: when
    # the database is down the daemon keeps what it knows instead of forgetting every row.
    _rows: dict[str, AbstractSet[str]] = field(default_factory=dict)
    # Intent: REST overrides (until policy.yaml next changes), rebalance requests, targets.
    _overrides: dict[str, dict[str, int]] = field(default_factory=dict)
    _rebalance: set[str] = field(default_factory=set)
    _scale_targets: dict[str, int] = field(default_factory=dict)
    # Operators' pins (reconciler/domain/pins.py) as last read from ZooKeeper or set through REST;
    # until a first read succeeds nothing is known of them, and no kind is acted on.
    _pins: dict[str, Pin] = field(default_factory=dict)
    _pins_known: bool = False
    _pins_set: int = 0  # pins set through REST so far: a read begun before one is stale
    # What the last pass saw of each kind, and the assignment it left (observed + its writes).
    _observed: dict[str, KindObserved] = field(default_factory=dict)
    _assignments: dict[str, Assignment] = field(default_factory=dict)
    _acting: set[str] = field(default_factory=set)  # kinds whose assignment a leader's pass left
    _reports: dict[str, KindReport] = field(default_factory=dict)
    _source_errors: dict[tuple[str, str], str] = field(default_factory=dict)
    _retries: OpRetries = field(default_factory=OpRetries)  # backoff, terminal refusals
    _expected: PodExpectations = field(default_factory=PodExpectations)
    # Caches of the pass itself, touched only by the thread that runs passes: the last id
    # plan of each kind (plan_memo.py) and when each kind's pods were last listed afresh.
    plan_memo: IdPlanMemo = field(default_factory=IdPlanMemo)
    pods_listed_at: dict[str, float] = field(default_factory=dict)
    _starts: PodStarts = field(default_factory=PodStarts)  # pods' starts, across clock steps
    _valves: dict[str, ValveState] = field(default_factory=dict)
    _revisions: dict[str, str] = field(default_factory=dict)  # kind -> its template's revision
    _restart_pending: set[str] = field(default_factory=set)  # rolling restarts asked
    _restart_uids: dict[str, frozenset[str]] = field(default_factory=dict)  # ... and their pods
    # The sizing (initInstances, maxInstances, resourcePerInstance) each kind was last
    # planned with; a different one re-sizes the kind in full.
    _sized_with: dict[str, tuple[int, int, int, int | None]] = field(default_factory=dict)
    _last_pass: PassResult | None = None
    _last_pass_at: float | None = None

    # --- the policy in force -------------------------------------------------------------

    @property
    def loaded(self) -> LoadedPolicy | None:
        return self._loaded

    @property
    def templates(self) -> dict[str, PodTemplate]:
        return self._templates

    @property
    def policy_error(self) -> str | None:
        return self._policy_error

    def policy_accepted(
        self,
        loaded: LoadedPolicy,
        templates: dict[str, PodTemplate],
        *,
        keep_overrides: bool = False,
    ) -> None:
        """A new policy is in force: REST overrides end with it (README), and refusals of
        operations planned under the old one may be tried again."""
        with self._lock:
            self._loaded, self._templates, self._policy_error = loaded, templates, None
            self._revisions = {k: template_revision(t) for k, t in templates.items()}
            # A kind taken out of the policy is read no more: its errors would stay for good.
            for key in [k for k in self._source_errors if k[1] not in loaded.policy.kinds]:
                del self._source_errors[key]
            if not keep_overrides:
                self._overrides.clear()
            self._retries.forget_refusals()

    def same_policy(self, loaded: LoadedPolicy, templates: dict[str, PodTemplate]) -> bool:
        """The policy in force is these bytes and these templates (an editor's touch)."""
        with self._lock:
            return (
                self._loaded is not None
                and self._loaded.sha256 == loaded.sha256
                and self._revisions == {k: template_revision(t) for k, t in templates.items()}
            )

    def request_restart(self, kind: str) -> None:
        """A rolling restart of `kind`: the pods the next pass sees are replaced,
        `rollout.maxUnavailable` at a time (their successors have new uids)."""
        with self._lock:
            self._restart_pending.add(kind)

    def note_pods(
        self, kind: str, pods: Mapping[str, Pod] | None, wall: float, mono: float
    ) -> dict[str, Pod] | None:
        """A pass saw these pods: a pending restart now names them (by uid). Returned with
        their starts as the daemon's own clocks vouch for them (pod_starts.py)."""
        with self._lock:
            if pods is None:
                return None
            if kind in self._restart_pending:
                self._restart_pending.discard(kind)
                self._restart_uids[kind] = frozenset(p.uid for p in pods.values() if p.uid)
            return self._starts.started(kind, pods, wall, mono)

    def policy_rejected(self, error: str | None) -> None:
        """The last edit was rejected (error) or was the same bytes (None): keep the policy."""
        with self._lock:
            self._policy_error = error

    def policies(self) -> dict[str, KindPolicy]:
        """Each kind's policy with the operators' REST overrides merged in."""
        with self._lock:
            if self._loaded is None:
                return {}
            return {
                kind: effective(p, self._overrides.get(kind))
                for kind, p in self._loaded.policy.kinds.items()
            }

    # --- rows ------------------------------------------------------------------------------

    def rows(self, kind: str) -> AbstractSet[str] | None:
        """The ids of `kind`'s table as last read and patched by events (immutable: shared,
        never copied; a million ids cost a copy's time and memory)."""
        with self._lock:
            return self._rows.get(kind)

    def row_count(self, kind: str) -> int | None:
        with self._lock:
            known = self._rows.get(kind)
            return len(known) if known is not None else None

    def remember_rows(self, kind: str, ids: AbstractSet[str]) -> AbstractSet[str]:
        """Keep a fresh read of the rows; returns them as kept (sharing the strings of the
        last read: idsets.share)."""
        with self._lock:
            kept = self._rows[kind] = share(self._rows.get(kind), ids)
            return kept

    def patch_rows(self, kind: str, added: Iterable[str], removed: Iterable[str]) -> bool:
        """Apply a row event to the cached ids; True if it changed anything."""
        with self._lock:
            known = self._rows.get(kind)
            if known is None:
                return False  # never read the table yet: the next full pass will
            gone = set(removed)
            added, removed = set(added) - known - gone, known & gone
            if not added and not removed:
                return False
            self._rows[kind] = (known - removed) | added if removed else known | added
            return True

    # --- intent ----------------------------------------------------------------------------

    def request_rebalance(self, kind: str, overrides: Mapping[str, int] | None = None) -> None:
        """An operator asked to re-orchestrate `kind` (REST), maybe with new sizing."""
        with self._lock:
            if overrides:
                self._overrides[kind] = {**self._overrides.get(kind, {}), **overrides}
            self._rebalance.add(kind)

    def set_scale_target(self, kind: str, target: int | None) -> None:
        with self._lock:
            if target is None:
                self._scale_targets.pop(kind, None)
            else:
                self._scale_targets[kind] = target

    def pins_read(self, pins: Mapping[str, Pin], generation: int) -> None:
        """The pins ZooKeeper held when `pins_generation()` was `generation` (every daemon
        reads them on its full passes); ignored if an operator pinned a kind meanwhile."""
        with self._lock:
            if generation == self._pins_set:
                self._pins, self._pins_known = dict(pins), True

    def pins_generation(self) -> int:
        with self._lock:
            return self._pins_set

    def pins_known(self) -> bool:
        with self._lock:
            return self._pins_known

    def pinned(self, kind: str) -> Pin | None:
        with self._lock:
            return self._pins.get(kind)

    def set_pin(self, kind: str, pin: Pin | None) -> None:
        """An operator pinned `kind` (None: unpinned, `start`), already written to ZooKeeper.
        Asking is confirming: the safety valve lets the plan this leads to go ahead."""
        with self._lock:
            if pin is None:
                self._pins.pop(kind, None)
            else:
                self._pins[kind] = pin
            self._pins_set += 1
            self._valves.setdefault(kind, ValveState()).authorize()

    def intents(self, policies: Mapping[str, KindPolicy]) -> dict[str, KindIntent]:
        with self._lock:
            return {
                k: KindIntent(
                    self._scale_targets.get(k),
                    k in self._rebalance,
                    k in self._sized_with and self._sized_with[k] != _sizing(p, self._pins.get(k)),
                    self._revisions.get(k, ""),
                    self._restart_uids.get(k, frozenset()),
                    p.rollout.max_unavailable,
                    self._pins[k].instances if k in self._pins else None,
                )
                for k, p in policies.items()
            }

    def note_sizing(self, kind: str, policy: KindPolicy) -> None:
        """The layout of `kind` now follows `policy`'s sizing (and its pin): a later change
        re-sizes it. Nothing noted yet (a daemon that just started) means: hold the layout."""
        with self._lock:
            self._sized_with[kind] = _sizing(policy, self._pins.get(kind))

    # --- what the last pass saw and left ---------------------------------------------------

    def assignment(self, kind: str, *, trusted: bool = False) -> Assignment | None:
        """The kind's assignment as the last pass left it. `trusted`: only if that pass acted
        (a leader's): a standby's view may be stale by the leader's writes since, so a pass
        that acts on it must read ZooKeeper first."""
        with self._lock:
            a = self._assignments.get(kind)
            if a is None or (trusted and kind not in self._acting):
                return None
            return dict(a)

    def last_report(self, kind: str) -> KindReport | None:
        """What the last pass's plan said of `kind`."""
        with self._lock:
            return self._reports.get(kind)

    def record_pass(
        self, result: PassResult, observed: Mapping[str, KindObserved], at: float
    ) -> None:
        """Remember a pass: what it saw, the assignment its successful writes left, its plan's
        reports; a kind whose operations all went through has had its rebalance."""
        with self._lock:
            self._observed.update(observed)
            for kind, obs in observed.items():
                if not result.unfinished(kind):  # none failed, none left by the budget
                    self._rebalance.discard(kind)
                    if not result.standby and obs.assignment is not None and kind in self._valves:
                        self._valves[kind].carried_out()
                if obs.assignment is not None:
                    done = [o.op for o in result.outcomes if o.op.kind == kind and o.result == "ok"]
                    self._assignments[kind] = applied(obs.assignment, done)
                    unsure = any(
                        o.op.kind == kind
                        and o.op.key.startswith("zk:")
                        and o.result in ("failed", "pending")
                        for o in result.outcomes
                    )
                    if result.standby or unsure:
                        # A standby's view may be stale by the leader's writes; a ZooKeeper
                        # write that failed may have landed, or met another writer (a
                        # compare-and-set conflict): the next pass reads ZooKeeper again.
                        self._acting.discard(kind)
                    else:
                        self._acting.add(kind)
            self._reports.update(result.plan.reports)
            self._last_pass, self._last_pass_at = result, at

    # --- sources ---------------------------------------------------------------------------

    # Per (source, kind): one kind's missing table or forbidden namespace is that kind's
    # fault; the others read fine, and the log does not flap between "unavailable" and "back".

    def source_failed(self, source: str, kind: str, error: str) -> bool:
        """Note a source as unreadable for `kind`; True if that is news (or a new error)."""
        with self._lock:
            news = self._source_errors.get((source, kind)) != error
            self._source_errors[(source, kind)] = error
            return news

    def source_ok(self, source: str, kind: str) -> bool:
        """Note a source as readable for `kind`; True if it had been unavailable."""
        with self._lock:
            return self._source_errors.pop((source, kind), None) is not None

    def source_down(self, source: str) -> bool:
        """True while `source` cannot be read for some kind."""
        with self._lock:
            return any(s == source for s, _ in self._source_errors)

    def degraded(self, kind: str) -> dict[str, str]:
        """What `kind` cannot read now: source -> error (empty: healthy)."""
        with self._lock:
            return {s: e for (s, k), e in self._source_errors.items() if k == kind}

    @property
    def blind(self) -> bool:
        """True while any source is unavailable for any kind."""
        with self._lock:
            return bool(self._source_errors)

    # --- operation retries -----------------------------------------------------------------

    def skip_reason(self, op: Op, now: float) -> str | None:
        """Why `op` must not be tried now, or None. `now` is monotonic (retries.py)."""
        with self._lock:
            return self._retries.skip_reason(op, now)

    def op_done(self, outcome: Outcome, now: float) -> float | None:
        """Record an operation's outcome; returns the retry delay when it failed."""
        with self._lock:
            return self._retries.done(outcome, now)

    # --- pod expectations (ReplicaSet) -----------------------------------------------------

    def expect_created(self, kind: str, name: str, instance_id: int, now: float) -> None:
        """We created pod `name`: until the watch shows it, count it as Pending."""
        with self._lock:
            self._expected.created(kind, name, instance_id, now)

    def expect_deleted(self, kind: str, name: str, uid: str, now: float) -> None:
        """We deleted incarnation `uid` of pod `name`: until the watch shows it go, count it
        as terminating."""
        with self._lock:
            self._expected.deleted(kind, name, uid, now)

    def expected_view(self, kind: str, cached: Mapping[str, Pod], now: float) -> dict[str, Pod]:
        """A watch cache's pods with our own changes it has not shown yet (expectations.py)."""
        with self._lock:
            return self._expected.view(kind, cached, now)

    def forget_expectations(self, kind: str) -> None:
        """A fresh list from the apiserver is the truth: nothing left to expect."""
        with self._lock:
            self._expected.forget(kind)

    # --- the safety valve ------------------------------------------------------------------

    def valve_decide(
        self, kind: str, reason: str | None, *, full: bool, confirm_passes: int, current: int
    ) -> tuple[bool, str | None]:
        """Hold this kind's drastic plan? Returns (hold, news): news is what to log, once.
        `current`: the kind's instances now; a pin it differs from is being carried out."""
        with self._lock:
            pin = self._pins.get(kind)
            return self._valves.setdefault(kind, ValveState()).decide(
                reason,
                full=full,
                confirm_passes=confirm_passes,
                operator=pin is not None and pin.instances != current,
            )

    def valve_confirm(self, kind: str) -> bool:
        """An operator confirms the held plan of `kind`; False when nothing is held."""
        with self._lock:
            return self._valves.setdefault(kind, ValveState()).confirm()

    def valve(self, kind: str) -> dict[str, object]:
        with self._lock:
            return (self._valves.get(kind) or ValveState()).summary()

    # --- the read side ---------------------------------------------------------------------

    def view(self) -> StateView:
        with self._lock:
            return StateView(
                loaded=self._loaded,
                policy_error=self._policy_error,
                policies=self.policies(),
                overrides={k: dict(v) for k, v in self._overrides.items()},
                assignments={k: dict(v) for k, v in self._assignments.items()},
                reports=dict(self._reports),
                observed_pods={k: o.pods for k, o in self._observed.items()},
                known_rows={k: len(v) for k, v in self._rows.items()},
                source_errors=errors_by_source(self._source_errors),
                last_pass=self._last_pass,
                last_pass_at=self._last_pass_at,
                pins=dict(self._pins),
            )
