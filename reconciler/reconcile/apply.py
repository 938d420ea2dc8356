"""The apply stage of a pass: each planned operation through a port, and what its outcome
leaves in the state (backoff, refusals, pod expectations), its metric and its log line.

A failure is retried on a later pass with backoff, an expected refusal (`NotYet`) on the next
pass without, a `Terminal` one not at all until the operation changes. Pods are
level-triggered: a dead pod is deleted (uid precondition) and its successor created by a later
pass, woken by the watch; nothing waits here.
"""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from functools import cache

from reconciler.domain.errors import NotYet, Terminal
from reconciler.domain.model import (
    AdoptPod,
    CreatePod,
    DeleteInstance,
    DeletePod,
    Instance,
    Op,
    Outcome,
    Plan,
    Reason,
    RecreatePod,
    WriteInstance,
    pod_name,
)
from reconciler.domain.outcomes import OutcomeResult, SkipReason
from reconciler.policy.schema import KindPolicy
from reconciler.reconcile.budget import Deadline
from reconciler.reconcile.pass_ports import MAX_WRITES_IN_FLIGHT, Ports
from reconciler.reconcile.ports import PodEvents
from reconciler.reconcile.reporting import op_fields, pod_event
from reconciler.state.daemon import DaemonState
from reconciler.telemetry import metrics
from reconciler.telemetry.logs import log

# --- apply -----------------------------------------------------------------------------


def apply(
    ports: Ports,
    state: DaemonState,
    policies: Mapping[str, KindPolicy],
    the_plan: Plan,
    deadline: Deadline | None = None,
) -> list[Outcome]:
    """Each operation of `the_plan` in order, until `deadline` (budget.py) has passed: the
    operations not tried by then are skipped (`SkipReason.OVER_BUDGET`), for the next pass.
    Instance writes that do not depend on each other go out together (`_Wave`)."""
    now = ports.mono()
    deadline = deadline or Deadline.unbounded(ports.mono)
    slots: list[Outcome | None] = []  # in plan order; a wave's are filled when it is sent
    writes = _StoreWrites()
    wave = _Wave(ports, writes, slots)
    creates: list[CreatePod] = []
    for op in the_plan.ops:
        if not wave.fits(op):
            wave.send()
        if deadline.passed():
            # Nothing after this point is tried, receivers included: the order rule holds
            # (a giver left untried leaves every later receiver untried too).
            slots.append(_skipped(op, SkipReason.OVER_BUDGET))
            continue
        why = state.retries.skip_reason(op, now)
        if why is None and isinstance(op, WriteInstance | DeleteInstance | CreatePod):
            held = writes.hold_back(op)
            why = (held, None) if held is not None else None
        if why is not None:
            outcome = _skipped(op, *why)
        elif isinstance(op, CreatePod):
            creates.append(op)
            continue
        elif isinstance(op, WriteInstance) and wave.fits(op):
            wave.add(writes.versioned(op))
            continue
        else:
            outcome = _apply_one(ports, writes.versioned(op))
        writes.done(outcome)
        slots.append(outcome)
    wave.send()
    outcomes = [outcome for outcome in slots if outcome is not None]
    created: dict[tuple[str, int], str] = {}  # (kind, instance id) -> the created pod's uid
    outcomes.extend(_create_pods(ports, creates, deadline, created))
    for outcome in outcomes:
        _remember(state, policies, outcome, now, ports.events, created)
    return outcomes


class _Wave:
    """Instance writes of one pass sent together: each waits on its own ZooKeeper round trip,
    so one after another a pass of many small changes spends most of its time waiting.

    A write joins the wave if nothing in it must land first: no write of the same instance
    and no giver of the ids it takes (the order rule, `_StoreWrites`). Anything else sends
    the wave and waits for all of it, so every later operation sees its outcomes.
    `ports.store_writes_in_flight` bounds it; 1 sends each write alone."""

    def __init__(self, ports: Ports, writes: _StoreWrites, slots: list[Outcome | None]) -> None:
        self.ports, self.writes, self.slots = ports, writes, slots
        self.ops: dict[int, WriteInstance] = {}  # slot -> write
        self.instances: set[tuple[str, int]] = set()
        self.gives: dict[str, set[str]] = {}

    def fits(self, op: Op) -> bool:
        if not self.ops:
            return True
        if not isinstance(op, WriteInstance) or len(self.ops) >= self.ports.store_writes_in_flight:
            return False
        gives = self.gives.get(op.kind)
        return (op.kind, op.instance.instance_id) not in self.instances and (
            not gives or gives.isdisjoint(op.takes)
        )

    def add(self, op: WriteInstance) -> None:
        self.ops[len(self.slots)] = op
        self.slots.append(None)
        self.instances.add((op.kind, op.instance.instance_id))
        if op.gives:
            self.gives.setdefault(op.kind, set()).update(op.gives)

    def send(self) -> None:
        if not self.ops:
            return
        ops = list(self.ops.items())
        if len(ops) == 1:
            results = [_apply_one(self.ports, ops[0][1])]
        else:
            results = list(_writers().map(lambda op: _apply_one(self.ports, op), self.ops.values()))
        for (slot, _op), outcome in zip(ops, results, strict=True):
            self.writes.done(outcome)
            self.slots[slot] = outcome
        self.ops, self.instances, self.gives = {}, set(), {}


@cache
def _writers() -> ThreadPoolExecutor:
    """The threads a wave's writes wait on (the client sends them on its own connection)."""
    return ThreadPoolExecutor(max_workers=MAX_WRITES_IN_FLIGHT, thread_name_prefix="store-write")


class _StoreWrites:
    """What one pass's ZooKeeper writes left, for the order rule (never two owners).

    The planner puts every write that takes ids off an instance before any that adds them
    elsewhere; here, a write that would add ids a giving write did not take off (failed,
    refused, pending, skipped) is held back this pass ("giver write failed"), and so is every
    later operation on an instance whose write did not go through: its second write or its
    delete. A pod create waits while its instance's write failed or was held back (a worker
    started now would find no shard). A later write of an instance already written this
    pass is made on the versions that write left (compare-and-set)."""

    def __init__(self) -> None:
        self.held: dict[str, set[str]] = {}  # kind -> ids still on an instance that gives them
        self.broken: set[tuple[str, int]] = set()  # instances whose write did not go through
        self.no_pod: set[tuple[str, int]] = set()  # ... failed or held back: no pod yet
        self.written: dict[tuple[str, int], Instance] = {}  # as the last write left them

    def hold_back(self, op: WriteInstance | DeleteInstance | CreatePod) -> SkipReason | None:
        if isinstance(op, CreatePod):
            held = (op.kind, op.instance_id) in self.no_pod
            return SkipReason.INSTANCE_WRITE_FAILED if held else None
        key = (
            op.kind,
            op.instance.instance_id if isinstance(op, WriteInstance) else op.instance_id,
        )
        if key in self.broken:
            return SkipReason.EARLIER_WRITE_FAILED
        if isinstance(op, WriteInstance) and not op.takes.isdisjoint(self.held.get(op.kind, ())):
            return SkipReason.GIVER_FAILED
        return None

    def versioned(self, op: Op) -> Op:
        """`op` on the versions an earlier write of its instance left this pass."""
        if isinstance(op, WriteInstance):
            last = self.written.get((op.kind, op.instance.instance_id))
            if last is not None:
                return replace(op, instance=replace(op.instance, versions=last.versions))
        elif isinstance(op, DeleteInstance):
            last = self.written.get((op.kind, op.instance_id))
            if last is not None:
                return replace(op, versions=last.versions)
        return op

    def done(self, outcome: Outcome) -> None:
        op = outcome.op
        if isinstance(op, WriteInstance):
            key = (op.kind, op.instance.instance_id)
            if outcome.result is OutcomeResult.OK:
                self.written[key] = op.instance
                return
            self.held.setdefault(op.kind, set()).update(op.gives)
            self.broken.add(key)
            if outcome.result is OutcomeResult.FAILED or outcome.skip is SkipReason.GIVER_FAILED:
                self.no_pod.add(key)
        elif isinstance(op, DeleteInstance) and outcome.result is not OutcomeResult.OK:
            self.broken.add((op.kind, op.instance_id))


def _apply_one(ports: Ports, op: Op) -> Outcome:
    try:
        if isinstance(op, WriteInstance):
            written = ports.store.write_instance(
                op.kind, op.instance, create=op.create, count_only=op.reason == Reason.COUNT_CHANGED
            )
            # The outcome carries the versions the write left: the next event pass plans on
            # them (the assignment the pass leaves), so its own write is no conflict.
            if isinstance(written, Instance):  # (a store that returns nothing: as planned)
                op = replace(op, instance=written)
        elif isinstance(op, DeleteInstance):
            ports.store.delete_instance(op.kind, op.instance_id, versions=op.versions)
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
    return Outcome(op, OutcomeResult.OK)


def _failure(op: Op, e: BaseException) -> Outcome:
    error = f"{type(e).__name__}: {e}"
    if isinstance(e, NotYet):
        return Outcome(op, OutcomeResult.PENDING, error)
    return Outcome(op, OutcomeResult.FAILED, error, retry=not isinstance(e, Terminal))


def _skipped(op: Op, reason: SkipReason, detail: str | None = None) -> Outcome:
    """Not tried this pass; its `error` reads as it always has (the reason's text)."""
    return Outcome(op, OutcomeResult.SKIPPED, reason.text(detail), skip=reason)


def _create_pods(
    ports: Ports, creates: list[CreatePod], deadline: Deadline, created: dict[tuple[str, int], str]
) -> list[Outcome]:
    """Pod creates of one pass, per kind in slow-start batches (1, 2, 4 ...); a kind whose
    turn comes after the deadline is left for the next pass. `created` is given each
    created pod's uid."""
    outcomes: list[Outcome] = []
    by_kind: dict[str, list[CreatePod]] = {}
    for op in creates:
        by_kind.setdefault(op.kind, []).append(op)
    for kind, ops in by_kind.items():
        if deadline.passed():
            outcomes.extend(_skipped(op, SkipReason.OVER_BUDGET) for op in ops)
            continue
        try:
            result = ports.pods.create_pods(kind, [op.instance_id for op in ops])
        except Exception as e:  # the adapter itself broke: report, retry next pass
            outcomes.extend(_failure(op, e) for op in ops)
            continue
        for i, pod in result.succeeded:
            created[(kind, ops[i].instance_id)] = pod.uid
            outcomes.append(Outcome(ops[i], OutcomeResult.OK))
        outcomes.extend(_failure(ops[i], e) for i, e in result.failed)
        outcomes.extend(_skipped(ops[i], SkipReason.SLOW_START_STOPPED) for i in result.skipped)
    return outcomes


def _remember(
    state: DaemonState,
    policies: Mapping[str, KindPolicy],
    outcome: Outcome,
    now: float,
    events: PodEvents | None,
    created: dict[tuple[str, int], str],
) -> None:
    """Backoff, refusals and pod expectations for one outcome; its metric and log line."""
    op = outcome.op
    metrics.OPERATIONS.labels(op.kind, type(op).__name__, outcome.result).inc()
    retry_in = state.retries.done(outcome, now)
    if outcome.result is OutcomeResult.SKIPPED:
        return
    fields = op_fields(op)
    if outcome.result is OutcomeResult.FAILED:
        if outcome.retry:
            log.warning("operation failed", **fields, error=outcome.error, retry_in=retry_in)
        else:
            log.error("operation refused", **fields, error=outcome.error, retry="never")
        return
    if outcome.result is OutcomeResult.OK:
        if isinstance(op, CreatePod) and op.kind in policies:
            name = pod_name(policies[op.kind].instance_name, op.instance_id)
            uid = created.get((op.kind, op.instance_id), "")
            state.pods.created(op.kind, name, op.instance_id, now, uid)
        elif isinstance(op, RecreatePod | DeletePod):
            # A pass woken before the watch shows it going must not delete it again.
            state.pods.deleted(op.kind, op.pod_name, op.uid, now)
        if events is not None and op.kind in policies:
            pod_event(events, policies[op.kind], op)
    applied = outcome.result is OutcomeResult.OK
    log.info("operation applied" if applied else "operation pending", **fields)
