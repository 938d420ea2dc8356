"""One reconcile pass: observe -> plan -> apply, like controller-runtime's Reconcile.

Level-triggered and idempotent: each pass re-observes what it needs and plans from scratch.
Row events only patch the cached id sets (hints); the periodic pass re-reads the database
and converges whatever events missed. A failed operation is retried on a later pass with
exponential backoff; the others go ahead.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, TypeVar

from reconciler import metrics
from reconciler.adapters import SourceUnavailable
from reconciler.adapters.inventory import UnknownTable
from reconciler.adapters.kube import PodStillTerminating
from reconciler.logs import log
from reconciler.model import (
    Assignment,
    CreatePod,
    DeleteInstance,
    DeletePod,
    Heartbeats,
    Instance,
    KindObserved,
    KindReport,
    Observed,
    Op,
    Plan,
    Pod,
    RecreatePod,
    WriteInstance,
    applied,
)
from reconciler.planner import plan
from reconciler.policy import KindPolicy, LoadedPolicy, effective
from reconciler.slowstart import SlowStartResult

if TYPE_CHECKING:
    from reconciler.autoscale import Autoscaler

T = TypeVar("T")

# --- the adapters, as the reconciler sees them ------------------------------------------


class Store(Protocol):
    def read(self, kind: str) -> Assignment: ...
    def write_instance(self, kind: str, instance: Instance, *, create: bool) -> None: ...
    def delete_instance(self, kind: str, instance_id: int) -> None: ...


class Rows(Protocol):
    def ids(self, table: str) -> frozenset[str]: ...


class Pods(Protocol):
    def list_pods(self, kind: str) -> dict[str, Pod]: ...
    def create_pods(self, kind: str, instance_ids: Sequence[int]) -> SlowStartResult[Pod]: ...
    def delete_pod(self, kind: str, name: str) -> None: ...
    def recreate_pod(self, kind: str, instance_id: int, name: str, wait_seconds: float) -> bool: ...


class HeartbeatSource(Protocol):
    def snapshot(self, kind: str) -> Heartbeats: ...
    def forget(self, kind: str, instance_id: int) -> None: ...


BACKOFF_BASE_SECONDS = 1.0
BACKOFF_MAX_SECONDS = 300.0
RECREATE_WAIT_SECONDS = 5.0


@dataclass
class Outcome:
    op: Op
    result: str  # "ok", "failed", "pending" (will finish on a later pass), "skipped"
    error: str | None = None


@dataclass
class PassResult:
    trigger: str
    plan: Plan
    outcomes: list[Outcome]
    seconds: float
    dry_run: bool = False

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.result == "failed"]


@dataclass
class _Backoff:
    failures: int = 0
    not_before: float = 0.0


@dataclass
class Reconciler:
    """Holds the adapters and what the daemon knows between passes."""

    store: Store
    rows: Rows
    pods: Pods
    heartbeats: HeartbeatSource | None = None
    # Sets `scale_targets` from pod CPU/memory on full passes (kinds with `autoscale`).
    autoscaler: Autoscaler | None = None
    clock: Callable[[], float] = time.time
    # Last ids read from the database per kind, patched by row events in between reads: when
    # the database is down the daemon keeps what it knows instead of forgetting every row.
    known_rows: dict[str, set[str]] = field(default_factory=dict)
    # REST overrides (maxInstances, resourcePerInstance) until policy.yaml next changes.
    overrides: dict[str, dict[str, int]] = field(default_factory=dict)
    rebalance_requested: set[str] = field(default_factory=set)
    scale_targets: dict[str, int] = field(default_factory=dict)
    last_reports: dict[str, KindReport] = field(default_factory=dict)
    last_observed: dict[str, KindObserved] = field(default_factory=dict)
    # Each kind's assignment as the last pass left it: what REST and `status` report.
    assignments: dict[str, Assignment] = field(default_factory=dict)
    source_errors: dict[str, str] = field(default_factory=dict)
    _backoff: dict[str, _Backoff] = field(default_factory=dict)

    # --- inputs between passes ----------------------------------------------------------

    def patch_rows(self, kind: str, added: Iterable[str], removed: Iterable[str]) -> bool:
        """Apply a row event to the cached ids; True if it changed anything."""
        known = self.known_rows.get(kind)
        if known is None:
            return False  # never read the table yet: the next full pass will
        added, removed = set(added), set(removed)
        changed = not added <= known or not known.isdisjoint(removed)
        known |= added
        known -= removed
        return changed

    def policies(self, loaded: LoadedPolicy) -> dict[str, KindPolicy]:
        return {
            kind: effective(p, self.overrides.get(kind)) for kind, p in loaded.policy.kinds.items()
        }

    # --- the pass ----------------------------------------------------------------------

    def run(
        self,
        loaded: LoadedPolicy,
        *,
        trigger: str,
        read_rows: bool = True,
        dry_run: bool = False,
        kinds: Iterable[str] | None = None,
    ) -> PassResult:
        started = time.monotonic()
        policies = self.policies(loaded)
        if kinds is not None:
            policies = {k: p for k, p in policies.items() if k in set(kinds)}
        observed = self.observe(policies, read_rows=read_rows)
        the_plan = plan(policies, observed)
        if dry_run:
            return PassResult(trigger, the_plan, [], time.monotonic() - started, True)
        outcomes = self.apply(the_plan)
        result = PassResult(trigger, the_plan, outcomes, time.monotonic() - started)
        for kind in policies:
            if not any(o.op.kind == kind and o.result == "failed" for o in outcomes):
                self.rebalance_requested.discard(kind)
            after = self._assignment_after(kind, outcomes)
            if after is not None:
                self.assignments[kind] = after
        self.last_reports.update(the_plan.reports)
        self._publish(result)
        return result

    def observe(self, policies: Mapping[str, KindPolicy], *, read_rows: bool) -> Observed:
        now = self.clock()
        kinds: dict[str, KindObserved] = {}
        for kind, policy in policies.items():
            row_ids = self._read_rows(kind, policy.table) if read_rows else self._cached(kind)
            if not read_rows and kind in self.assignments:
                # Event passes trust what the last pass left in ZooKeeper (this daemon is its
                # only writer): re-reading and parsing every instance per event burst would
                # starve the MQTT thread of the GIL. Full passes re-read and correct drift.
                assignment: Assignment | None = self.assignments[kind]
            else:
                assignment = self._try("zookeeper", lambda k=kind: self.store.read(k))
            pods = self._try("kubernetes", lambda k=kind: self.pods.list_pods(k))
            hb = (
                self.heartbeats.snapshot(kind)
                if self.heartbeats is not None and policy.heartbeat.enabled
                else None
            )
            if read_rows and self.autoscaler is not None:
                self.autoscaler.update(
                    kind, policy, row_ids, assignment, pods, now, self.scale_targets
                )
            kinds[kind] = KindObserved(
                kind,
                row_ids,
                assignment,
                pods,
                hb,
                scale_target=self.scale_targets.get(kind),
                rebalance=kind in self.rebalance_requested,
            )
        self.last_observed.update(kinds)
        return Observed(now, kinds)

    def _read_rows(self, kind: str, table: str) -> frozenset[str] | None:
        def read() -> frozenset[str]:
            try:
                return self.rows.ids(table)
            except UnknownTable as e:
                # A configuration error (wrong table in policy.yaml, empty database), not an
                # outage; but acting on it the same way keeps every id where it is.
                raise SourceUnavailable(str(e)) from e

        ids = self._try("database", read)
        if ids is not None:
            self.known_rows[kind] = set(ids)
            return ids
        return self._cached(kind)

    def _cached(self, kind: str) -> frozenset[str] | None:
        known = self.known_rows.get(kind)
        return frozenset(known) if known is not None else None

    def _try(self, source: str, read: Callable[[], T]) -> T | None:
        try:
            value = read()
        except SourceUnavailable as e:
            if self.source_errors.get(source) != str(e):
                log.warning("source unavailable", source=source, error=str(e))
            self.source_errors[source] = str(e)
            metrics.SOURCE_UP.labels(source).set(0)
            return None
        if source in self.source_errors:
            log.info("source back", source=source)
            del self.source_errors[source]
        metrics.SOURCE_UP.labels(source).set(1)
        return value

    # --- apply -------------------------------------------------------------------------

    def apply(self, the_plan: Plan) -> list[Outcome]:
        now = self.clock()
        outcomes: list[Outcome] = []
        failed_instances: set[tuple[str, int]] = set()
        creates: list[CreatePod] = []
        for op in the_plan.ops:
            state = self._backoff.get(op.key)
            if state is not None and state.not_before > now:
                outcomes.append(Outcome(op, "skipped", "backing off after earlier failures"))
                continue
            if isinstance(op, CreatePod):
                if (op.kind, op.instance_id) in failed_instances:
                    # Its znodes were not written: a worker started now would find no shard.
                    outcomes.append(Outcome(op, "skipped", "instance write failed"))
                else:
                    creates.append(op)
                continue
            outcome = self._apply_one(op)
            outcomes.append(outcome)
            if outcome.result == "failed" and isinstance(op, WriteInstance):
                failed_instances.add((op.kind, op.instance.instance_id))
        outcomes.extend(self._create_pods(creates))
        for outcome in outcomes:
            self._record(outcome, now)
        return outcomes

    def _apply_one(self, op: Op) -> Outcome:
        try:
            if isinstance(op, WriteInstance):
                self.store.write_instance(op.kind, op.instance, create=op.create)
            elif isinstance(op, DeleteInstance):
                self.store.delete_instance(op.kind, op.instance_id)
                if self.heartbeats is not None:
                    # A later instance under the same id must not inherit its last heartbeat.
                    self.heartbeats.forget(op.kind, op.instance_id)
            elif isinstance(op, DeletePod):
                self.pods.delete_pod(op.kind, op.pod_name)
            elif isinstance(op, RecreatePod):
                done = self.pods.recreate_pod(
                    op.kind, op.instance_id, op.pod_name, RECREATE_WAIT_SECONDS
                )
                if not done:
                    return Outcome(op, "pending", "old pod still terminating")
            else:  # CreatePod goes through _create_pods, in slow-start batches
                raise TypeError(f"unexpected operation {op!r}")
        except Exception as e:  # every failure is reported and retried, never fatal
            return Outcome(op, "failed", f"{type(e).__name__}: {e}")
        return Outcome(op, "ok")

    def _create_pods(self, creates: list[CreatePod]) -> list[Outcome]:
        """Pod creates of one pass, per kind in slow-start batches (kube adapter)."""
        outcomes: list[Outcome] = []
        by_kind: dict[str, list[CreatePod]] = {}
        for op in creates:
            by_kind.setdefault(op.kind, []).append(op)
        for kind, ops in by_kind.items():
            try:
                result = self.pods.create_pods(kind, [op.instance_id for op in ops])
            except Exception as e:  # the adapter itself broke: report, retry next pass
                outcomes.extend(Outcome(op, "failed", f"{type(e).__name__}: {e}") for op in ops)
                continue
            outcomes.extend(Outcome(ops[i], "ok") for i, _ in result.succeeded)
            outcomes.extend(
                Outcome(
                    ops[i],
                    "pending" if isinstance(e, PodStillTerminating) else "failed",
                    f"{type(e).__name__}: {e}",
                )
                for i, e in result.failed
            )
            outcomes.extend(
                Outcome(ops[i], "skipped", "slow start stopped after a failed batch")
                for i in result.skipped
            )
        return outcomes

    def _record(self, outcome: Outcome, now: float) -> None:
        op = outcome.op
        metrics.OPERATIONS.labels(op.kind, type(op).__name__, outcome.result).inc()
        if outcome.result == "skipped":
            return
        fields = _op_fields(op)
        if outcome.result == "failed":
            state = self._backoff.setdefault(op.key, _Backoff())
            state.failures += 1
            delay = min(BACKOFF_BASE_SECONDS * 2 ** (state.failures - 1), BACKOFF_MAX_SECONDS)
            state.not_before = now + delay
            log.warning("operation failed", **fields, error=outcome.error, retry_in=delay)
            return
        self._backoff.pop(op.key, None)
        log.info("operation applied" if outcome.result == "ok" else "operation pending", **fields)

    # --- metrics -----------------------------------------------------------------------

    def _publish(self, result: PassResult) -> None:
        for kind, report in result.plan.reports.items():
            if report.rows is not None:
                metrics.ROWS.labels(kind).set(report.rows)
            metrics.INSTANCES.labels(kind).set(report.instances)
            metrics.UNASSIGNED.labels(kind).set(report.unassigned)
            metrics.OVER_CAPACITY.labels(kind).set(1 if report.error else 0)
            if report.moved:
                metrics.IDS_MOVED.labels(kind).inc(report.moved)
            if report.error:
                log.error(
                    "over capacity", resource=kind, error=report.error, unassigned=report.unassigned
                )
            assignment = self.assignments.get(kind)
            if assignment is not None:
                metrics.publish(
                    metrics.INSTANCE_USED,
                    kind,
                    {(str(i),): inst.used for i, inst in assignment.items()},
                )
                metrics.publish(
                    metrics.INSTANCE_COUNT,
                    kind,
                    {(str(i),): inst.count for i, inst in assignment.items()},
                )
        if not self.source_errors and not result.failed:
            metrics.LAST_SUCCESS.set(self.clock())

    def _assignment_after(self, kind: str, outcomes: list[Outcome]) -> Assignment | None:
        """The kind's assignment as this pass left it: observed, then its successful writes."""
        obs = self.last_observed.get(kind)
        if obs is None or obs.assignment is None:
            return None
        return applied(
            obs.assignment, [o.op for o in outcomes if o.op.kind == kind and o.result == "ok"]
        )


def _op_fields(op: Op) -> dict[str, object]:
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
    elif isinstance(op, DeleteInstance | CreatePod | DeletePod | RecreatePod):
        # DeletePod: None for a pod without an instanceId label (an orphan).
        fields["instance_id"] = op.instance_id
    if isinstance(op, DeletePod | RecreatePod):
        fields["pod"] = op.pod_name
    return fields
