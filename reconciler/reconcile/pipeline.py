"""One pass, as a pipeline of plain functions: observe -> intend -> plan -> apply -> record.

Like controller-runtime's Reconcile: level-triggered and idempotent. Each stage is a function
of its inputs; what must outlive the pass goes to the stage's own part of `DaemonState`, and the
outside world is reached only through `reconciler.reconcile.ports` (never an adapter), so the whole
pass runs in milliseconds against the fakes in tests/support/fakes.py.

- observe: read what each kind looks like now. Full passes read the database, ZooKeeper and
  a fresh pod list; event passes (row events, pod changes, heartbeat checks) trust the rows
  patched by events, the assignment the last pass left (this daemon is its only writer) and
  the pod watch's cache. A source that cannot be read is "blind" (None): nothing that
  depends on it changes. The kinds share the pass's budget in turn (budget.py): a read the
  budget leaves unmade is blind too, and the kinds not reached go first next pass.
- intend: operators' overrides and rebalance requests, and the autoscaler's targets (full
  passes only), per kind, beside the observation.
- plan: the pure planner (`reconciler.reconcile.planner.plan`).
- apply: each operation through a port (`reconciler.reconcile.apply`).
- record: remember what the pass saw and left, publish metrics.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from collections.abc import Set as AbstractSet
from contextlib import suppress
from dataclasses import replace
from typing import TypeVar

from reconciler.domain.call_limit import reads_within
from reconciler.domain.errors import SourceUnavailable, Terminal
from reconciler.domain.ids import same_ids
from reconciler.domain.model import (
    Assignment,
    KindIntent,
    KindObserved,
    Observed,
    Op,
    PassResult,
    Plan,
    Pod,
)
from reconciler.policy.schema import KindPolicy
from reconciler.reconcile.apply import apply
from reconciler.reconcile.budget import Deadline, report_overrun
from reconciler.reconcile.pass_ports import Ports
from reconciler.reconcile.planner import plan
from reconciler.reconcile.reporting import quota_event
from reconciler.reconcile.row_strings import in_rows_strings
from reconciler.rules.valve import ValveLimits, held, judge
from reconciler.state.daemon import DaemonState
from reconciler.telemetry import metrics
from reconciler.telemetry.logs import log

T = TypeVar("T")

VALVE_LIMITS = ValveLimits()


def run_pass(
    ports: Ports,
    state: DaemonState,
    *,
    trigger: str,
    full: bool = True,
    dry_run: bool = False,
    kinds: Iterable[str] | None = None,
    deadline: Deadline | None = None,
) -> PassResult:
    """One pass over `kinds` (default: every kind of the policy in force), within `deadline`
    (budget.py; None: no budget).

    Under leader election, a daemon that does not lead (or cannot prove it does) runs a
    standby pass: it observes and plans, so its view stays current for the moment it takes
    over, and applies nothing. An observe-only daemon (RECONCILER_OBSERVE_ONLY) runs only
    standby passes, whoever leads: its plan is what a leader would apply now."""
    deadline = deadline or Deadline.unbounded(ports.mono)
    policies = state.policies()
    if kinds is not None:
        wanted = set(kinds)
        policies = {k: p for k, p in policies.items() if k in wanted}
    with reads_within(deadline.left):  # every read is bounded by what the budget has left
        observed = observe(ports, state, policies, full=full, deadline=deadline)
        intents = intend(ports, state, policies, observed, full=full, deadline=deadline)
    the_plan = guard(state, observed, plan(policies, observed, intents, state.plan_memo), full=full)
    if dry_run:
        return PassResult(trigger, the_plan, (), deadline.elapsed(), True)
    if ports.observe_only or (ports.leadership is not None and not ports.leadership.may_act()):
        result = PassResult(
            trigger, the_plan, (), deadline.elapsed(), standby=True, over_budget=deadline.passed()
        )
    else:
        outcomes = tuple(apply(ports, state, policies, the_plan, deadline))
        result = PassResult(
            trigger, the_plan, outcomes, deadline.elapsed(), over_budget=deadline.passed()
        )
    if result.over_budget:
        report_overrun(deadline, len(result.left), state.sources.unread_kinds(policies))
    record(ports, state, result, observed, policies)
    return result


# --- observe ---------------------------------------------------------------------------

# What one kind's observation reads, in order (the sources as `_read` names them).
KIND_SOURCES = ("database", "zookeeper", "kubernetes")


def observe(
    ports: Ports,
    state: DaemonState,
    policies: Mapping[str, KindPolicy],
    *,
    full: bool,
    deadline: Deadline | None = None,
) -> Observed:
    """Every kind as it is now, in turns: the kinds the last pass did not reach first
    (`state.turns`). A kind is begun, and each of its reads made, only while the budget
    lasts (each read bounded by what is left: reconciler/domain/call_limit.py); what it
    leaves unread is blind, as an unreadable source is, and the kind degraded for this pass.
    """
    deadline = deadline or Deadline.unbounded(ports.mono)
    kinds: dict[str, KindObserved] = {}
    pins_known = _read_pins(ports, state, full=full)
    order = state.turns.order(policies)
    reached: list[str] = []
    for kind in order:
        if deadline.passed():
            for source in KIND_SOURCES:
                state.sources.unread(source, kind, _too_late(deadline))
            kinds[kind] = KindObserved(kind, state.rows.get(kind), None, None)
            continue
        reached.append(kind)
        state.sources.looking(kind)
        kinds[kind] = _observe_kind(ports, state, kind, policies[kind], pins_known, full, deadline)
    state.turns.note(order, reached)
    return Observed(ports.wall(), {kind: kinds[kind] for kind in policies}, ports.mono())


def _observe_kind(
    ports: Ports,
    state: DaemonState,
    kind: str,
    policy: KindPolicy,
    pins_known: bool,
    full: bool,
    deadline: Deadline,
) -> KindObserved:
    row_ids = (
        _read_rows(ports, state, kind, policy.table, deadline) if full else state.rows.get(kind)
    )
    assignment = None if full else state.world.assignment(kind, trusted=True)
    if not pins_known:  # a kind an operator stopped must not be started by accident
        assignment = _read(state, "zookeeper", kind, _pins_unknown)
    elif assignment is None:
        read = _read(state, "zookeeper", kind, lambda: ports.store.read(kind), deadline)
        assignment = in_rows_strings(ports.store, kind, read, row_ids)  # one copy of each id
    heartbeats = (
        ports.heartbeats.snapshot(kind)
        if ports.heartbeats is not None and policy.heartbeat.enabled
        else None
    )
    pods = _observe_pods(ports, state, kind, full=full, deadline=deadline)
    if pods is not None:
        state.requests.pods_seen(kind, pods)  # a pending restart now names these pods
        pods = state.pods.started(kind, pods, ports.wall(), ports.mono())
    return KindObserved(kind, row_ids, assignment, pods, heartbeats)


def _too_late(deadline: Deadline) -> str:
    return (
        f"not read in this pass: its budget of {deadline.budget:g} s ran out first "
        "(RECONCILER_PASS_BUDGET_SECONDS)"
    )


def _read_pins(ports: Ports, state: DaemonState, *, full: bool) -> bool:
    """Operators' pins (`reconciler scale`/`stop`) from ZooKeeper, on full passes and until a
    first read succeeds; a failed read keeps those known. True once they are known."""
    pins = state.pins
    if ports.pins is None:
        pins.read({}, pins.generation())
    elif full or not pins.known():
        generation = pins.generation()  # a pin set while we read is not undone
        # A failed read keeps the known pins in force; the assignment read says what is down.
        with suppress(SourceUnavailable, Terminal):
            pins.read(ports.pins.read(), generation)
    return pins.known()


def _pins_unknown() -> Assignment:
    raise SourceUnavailable("operators' pins (reconciler scale/stop) unreadable: nothing planned")


def _read_rows(
    ports: Ports, state: DaemonState, kind: str, table: str, deadline: Deadline
) -> AbstractSet[str] | None:
    ids = _read(state, "database", kind, lambda: ports.rows.ids(table), deadline)
    if ids is None:
        return state.rows.get(kind)  # keep what we know rather than forget every row
    kept = state.rows.remember(kind, ids)
    if not same_ids(kept, ids):  # the same rows, in the strings held already: one copy, not two
        ports.rows.adopt(table, kept)
    return kept


def _observe_pods(
    ports: Ports, state: DaemonState, kind: str, *, full: bool, deadline: Deadline
) -> dict[str, Pod] | None:
    """The pod watch's view while its stream is up; a fresh list when there is none, and
    on a full pass once every `full_read_seconds` (the backstop for a missed watch event).

    The watch follows the pods labelled as ours: while the last look found pods known by
    their name alone (the old orchestrator's, not adopted yet: what an observe-only daemon
    or a standby keeps seeing), only a list shows them, so every pass lists."""
    now = ports.mono()
    listed = state.pods.listed_at(kind)
    list_due = full and (listed is None or now - listed >= ports.full_read_seconds)
    seen = state.world.pods().get(kind)
    unlabelled = seen is not None and not all(p.labelled for p in seen.values())
    if not list_due and not unlabelled and ports.pod_cache is not None:
        cached = ports.pod_cache.pods(kind)
        if cached is not None:
            return state.pods.expected(kind, cached, now, ports.pod_cache.gone(kind))
    pods = _read(state, "kubernetes", kind, lambda: ports.pods.list_pods(kind), deadline)
    if pods is not None:
        state.pods.listed(kind, now)  # a fresh list already shows our own changes
    return pods


def _read(
    state: DaemonState,
    source: str,
    kind: str,
    read: Callable[[], T],
    deadline: Deadline | None = None,
) -> T | None:
    """`read()`, or None when its source cannot be read now for `kind` (unavailable, or a
    terminal refusal such as a table that does not exist or a forbidden namespace): the
    pass is blind to it for that kind only, and the kind is degraded. Past `deadline`, None
    without reading: the kind is blind to it too, and degraded for this pass."""
    if deadline is not None and deadline.passed():
        state.sources.unread(source, kind, _too_late(deadline))
        return None
    try:
        value = read()
    except (SourceUnavailable, Terminal) as e:
        if state.sources.failed(source, kind, str(e)):
            log.warning("source unavailable", source=source, resource=kind, error=str(e))
        value = None
    else:
        if state.sources.recovered(source, kind):
            log.info("source back", source=source, resource=kind)
    metrics.SOURCE_UP.labels(source).set(0 if state.sources.down(source) else 1)
    return value


# --- intend ----------------------------------------------------------------------------


def intend(
    ports: Ports,
    state: DaemonState,
    policies: Mapping[str, KindPolicy],
    observed: Observed,
    *,
    full: bool,
    deadline: Deadline | None = None,
) -> dict[str, KindIntent]:
    """Each kind's intent: rebalance requests, and on full passes the autoscaler's target
    from pod CPU/memory (it decides at most once per its period; the target stays between),
    and the instances the namespace's ResourceQuota admits a pod for (read on full passes).
    Past the budget, a kind's quota and autoscaler reads wait for the next pass: its last
    limit and target stay; planning is pure and takes milliseconds."""
    deadline = deadline or Deadline.unbounded(ports.mono)
    if full and ports.admission is not None:
        for kind, policy in policies.items():
            if deadline.passed():
                break
            ports.admission.update(kind, policy, observed.kinds[kind].pods, observed.moment.mono)
    if full and ports.autoscaler is not None:
        for kind, policy in policies.items():
            if deadline.passed():
                break
            if state.pins.pinned(kind) is not None:  # an operator's pin wins until `start`
                state.sizing.set_target(kind, None)
                continue
            obs = observed.kinds[kind]
            targets: dict[str, int] = {}
            ports.autoscaler.update(
                kind, policy, obs.row_ids, obs.assignment, obs.pods, observed.moment, targets
            )
            state.sizing.set_target(kind, targets.get(kind))
    intents = state.intents(policies)
    if ports.admission is not None:
        for kind, intent in intents.items():
            intents[kind] = replace(intent, pod_limit=ports.admission.pod_limit(kind))
    return intents


# --- guard -----------------------------------------------------------------------------


def guard(state: DaemonState, observed: Observed, the_plan: Plan, *, full: bool) -> Plan:
    """The safety valve (reconciler/rules/valve.py): hold a kind's destructive operations while its
    plan would unassign a large share of its ids or delete many pods."""
    limits = VALVE_LIMITS
    kept: list[Op] = []
    for kind, obs in observed.kinds.items():
        ops = [op for op in the_plan.ops if op.kind == kind]
        if obs.assignment is None:
            kept += ops
            continue
        verdict = judge(obs.assignment, ops, limits)
        pin = state.pins.pinned(kind)
        hold, news = state.valves.decide(
            kind,
            verdict.reason,
            full=full,
            confirm_passes=limits.confirm_passes,
            # A pin the kind's instances differ from is being carried out: let it through.
            operator=pin is not None and pin.instances != len(obs.assignment),
        )
        metrics.VALVE_ENGAGED.labels(kind).set(1 if hold else 0)
        if news is not None:
            (log.warning if hold else log.info)(
                "safety valve",
                resource=kind,
                state=news,
                unassigned=verdict.unassigned,
                assigned=verdict.assigned,
                pod_deletes=verdict.pod_deletes,
            )
        kept += held(ops)[0] if hold else ops
    kept += [op for op in the_plan.ops if op.kind not in observed.kinds]
    return Plan(tuple(kept), the_plan.reports)


# --- record ----------------------------------------------------------------------------


def record(
    ports: Ports,
    state: DaemonState,
    result: PassResult,
    observed: Observed,
    policies: Mapping[str, KindPolicy],
) -> None:
    """Remember the pass in the state; publish its figures."""
    before = {kind: state.last.report(kind) for kind in result.plan.reports}
    state.record_pass(result, observed.kinds, ports.wall())
    if not result.standby:
        for kind, obs in observed.kinds.items():
            # A re-sizing half done (an operation failed, or left by the budget) is planned
            # again in full by the next pass; so is one the safety valve holds, until it lets go.
            done = not result.unfinished(kind) and not state.valves.summary(kind)["engaged"]
            if obs.row_ids is not None and obs.assignment is not None and done:
                state.sizing.note(kind, policies[kind], state.pins.pinned(kind))
    # Every kind of the policy, whichever this pass read: one that recovered reads 0, and
    # the series of a kind taken out of the policy go (they would stay at 1 for good).
    kinds = state.policies()
    for kind in kinds:
        metrics.KIND_DEGRADED.labels(kind).set(1 if state.sources.degraded(kind) else 0)
    metrics.retain_kinds(kinds)
    for kind, report in result.plan.reports.items():
        if report.rows is not None:
            metrics.ROWS.labels(kind).set(report.rows)
        metrics.INSTANCES.labels(kind).set(report.instances)
        metrics.UNASSIGNED.labels(kind).set(report.unassigned)
        metrics.OVER_CAPACITY.labels(kind).set(1 if report.error else 0)
        if report.moved and not result.standby:
            metrics.IDS_MOVED.labels(kind).inc(report.moved)
        # A state, said when it begins or changes and when it ends, not on every pass (the
        # metric and `status` carry it meanwhile).
        was = before[kind].error if before[kind] is not None else None
        if report.error and report.error != was and not result.standby:
            log.error(
                "over capacity", resource=kind, error=report.error, unassigned=report.unassigned
            )
            if ports.events is not None and kind in policies:
                quota_event(ports.events, policies[kind], report)
        elif was and not report.error and not result.standby:
            log.info("over capacity resolved", resource=kind)
        assignment = state.world.assignment(kind)
        if assignment is not None:
            metrics.publish(
                metrics.INSTANCE_USED, kind, {(str(i),): x.used for i, x in assignment.items()}
            )
            metrics.publish(
                metrics.INSTANCE_COUNT, kind, {(str(i),): x.count for i, x in assignment.items()}
            )
    if not state.sources.blind and not result.failed:
        metrics.LAST_SUCCESS.set(ports.wall())
