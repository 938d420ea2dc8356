"""Scheduling only: when to run a pass, and of what kind.

Every input (the tick timer, policy.yaml edits, SIGHUP, row events, pod changes, REST calls)
becomes a `Wake` on one queue; a single thread drains the queue and runs one pass
(`reconciler.reconcile.pipeline.run_pass`), so no two passes ever run at once and bursts
coalesce into one pass. The only wait on this thread is the queue's own (`_collect`): nothing
sleeps here. Intervals are measured on the monotonic clock; a wall-clock step cannot stall
the tick.

Each pass carries a deadline (reconciler/reconcile/budget.py, RECONCILER_PASS_BUDGET_SECONDS);
the operations it leaves go to a pass soon after. The loop tells `Liveness` when it works and
when its next pass is due: `/healthz` and the systemd watchdog ping (its own thread) follow
that progress.
"""

from __future__ import annotations

import queue
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reconciler.domain.backoff import Backoff
from reconciler.domain.events import RowEvent
from reconciler.domain.model import PassResult, Pod
from reconciler.domain.podspec import PodTemplate
from reconciler.domain.triggers import Trigger
from reconciler.policy.schema import LoadedPolicy
from reconciler.reconcile.budget import Deadline
from reconciler.reconcile.hints import PendingRows, patch_rows_from_hints
from reconciler.reconcile.pass_ports import Ports
from reconciler.reconcile.pipeline import run_pass
from reconciler.runtime import systemd
from reconciler.runtime.failpoints import Failpoints
from reconciler.runtime.failpoints import from_env as failpoints_from_env
from reconciler.runtime.liveness import GRACE_SECONDS, Liveness, WatchdogPinger
from reconciler.runtime.pending import PendingPlan
from reconciler.runtime.policy_watch import reload_policy, watch_policy_file
from reconciler.runtime.status import ReadSide
from reconciler.runtime.wake import Wake, WakeReason, in_burst
from reconciler.state.daemon import DaemonState
from reconciler.telemetry import metrics
from reconciler.telemetry.logs import ThrottledLog, log

# After a pass crashed (a bug, an unforeseen adapter error): retry no later than this.
CRASH_RETRY_MAX_SECONDS = 60.0
# A burst of row events (wake.in_burst) gathers until it pauses this long, at most
# BURST_MAX_SECONDS: a few writes per instance per burst, not one per pass.
BURST_QUIET_SECONDS = 0.02
BURST_MAX_SECONDS = 0.25
# reconciler_events_received_total{source="mqtt"}, looked up once (it is per message).
_MQTT_EVENTS = metrics.EVENTS.labels("mqtt")


@dataclass
class Daemon:
    policy_path: Path
    ports: Ports
    state: DaemonState = field(default_factory=DaemonState)
    # Called with the new templates after every successful policy load (the kube adapter
    # and the pod watcher render pods from them).
    on_templates: Callable[[dict[str, PodTemplate]], None] = lambda _t: None
    read: ReadSide | None = None  # the read side over `state` (built when not given)
    # Called once the loop has ended (SIGTERM): releases leadership so a standby takes over.
    on_stop: Callable[[], None] = lambda: None
    passes: int = 0  # passes run (tests and the bench count them)
    pending: PendingPlan = field(default_factory=PendingPlan)  # what GET /v1/plan lists
    pass_budget: float = 30.0  # RECONCILER_PASS_BUDGET_SECONDS
    liveness_grace: float = GRACE_SECONDS  # liveness.grace_for(the settings' call deadlines)
    liveness: Liveness = field(init=False)  # what /healthz and the watchdog ping follow
    failpoints: Failpoints | None = field(default_factory=failpoints_from_env)
    _was_leader: bool | None = None
    _transitions_counted: int = 0  # of the election's own count, added to the metric so far

    _queue: queue.Queue[Wake] = field(default_factory=queue.Queue)
    _stopping: threading.Event = field(default_factory=threading.Event)
    _next_tick: float = 0.0  # monotonic
    _next_check: float = float("inf")  # next light pass for heartbeat silence (monotonic)
    _retry: Backoff = field(default_factory=Backoff)
    # A publisher who floods us with forged hints must not flood the log too.
    _forged_log: ThrottledLog = field(default_factory=lambda: ThrottledLog(log, 10.0))
    _unverified_log: ThrottledLog = field(default_factory=lambda: ThrottledLog(log, 10.0))
    _pending: PendingRows = field(default_factory=PendingRows)  # row hints for the next pass
    # PendingRows.received when the last pass took its hints, and when it was over.
    _received_at_take: int = 0
    _received_after_pass: int = 0
    _took_at: float = 0.0  # time.monotonic() of the last take, and of the end of its pass
    _passed_at: float = 0.0

    def __post_init__(self) -> None:
        if self.read is None:
            self.read = ReadSide(self.state, self.ports, self.policy_path)
        self.liveness = Liveness(
            self.pass_budget, self.liveness_grace, clock=lambda: self.ports.mono()
        )

    # --- inputs (any thread) ------------------------------------------------------------

    def wake(self, item: Wake) -> None:
        self._queue.put(item)

    def on_row_event(self, event: RowEvent) -> None:
        _MQTT_EVENTS.inc()
        if self._pending.add(event):  # one wake-up per batch of hints, however many arrive
            self.wake(Wake(WakeReason.ROWS))

    def on_pod_change(self, kind: str, pod: Pod | None, event_type: str) -> None:
        # Changes the planner acts on wake the loop: a pod that died or vanished, and a pod
        # running (a rolling replacement goes on with the next pod once the new one runs).
        # A Pending pod's updates wake nobody.
        if pod is None or pod.phase != "Pending" or event_type == "DELETED":
            self.wake(Wake(WakeReason.POD, kind=kind))

    def orchestrate(
        self, kind: str, overrides: dict[str, int] | None, timeout: float = 60.0
    ) -> PassResult:
        """Rebalance `kind` now (REST); blocks the caller until the pass has run."""
        reply: Future[PassResult] = Future()
        self.wake(Wake(WakeReason.ORCHESTRATE, kind=kind, overrides=overrides, reply=reply))
        return reply.result(timeout)

    def on_leadership_change(self) -> None:
        """Won or lost the election: a new leader starts with a full pass at once."""
        self.wake(Wake(WakeReason.LEADER))

    def stop(self) -> None:
        self._stopping.set()
        self.wake(Wake(WakeReason.STOP))

    def load_policy(self, why: str) -> bool:
        """Load policy.yaml; on any error keep the last good policy and say why."""
        return reload_policy(self.state, self.policy_path, why, self.on_templates)

    def watch_policy_file(self) -> threading.Thread:
        """Reload policy.yaml when it changes (watchfiles), in a daemon thread."""
        loaded = self.state.policy.loaded
        templates = [loaded.template_path(k) for k in loaded.policy.kinds] if loaded else []
        return watch_policy_file(
            self.policy_path, lambda: self.wake(Wake(WakeReason.POLICY)), self._stopping, templates
        )

    # --- what the API, `status` and the tests read ----------------------------------------

    @property
    def loaded(self) -> LoadedPolicy | None:
        return self.state.policy.loaded

    @property
    def last_pass(self) -> PassResult | None:
        return self.state.view().last_pass

    @property
    def last_pass_at(self) -> float | None:
        return self.state.view().last_pass_at

    def status(self) -> dict[str, Any]:
        assert self.read is not None
        return self.read.status()

    # --- the loop -----------------------------------------------------------------------

    def run(self) -> None:
        """Run until stop(), SIGTERM or SIGINT; the pass in flight finishes first."""
        if not self.load_policy("start") and self.state.policy.loaded is None:
            raise SystemExit(f"no valid policy: {self.state.policy.error}")
        self._install_signals()
        status = f"reconciling {self.policy_path}"
        systemd.notify("READY=1", f"STATUS={status}")
        interval = systemd.watchdog_interval()
        pinger = WatchdogPinger(self.liveness, interval, status) if interval else None
        if pinger is not None:
            pinger.start()
        batch: list[Wake] = []
        while not self._stopping.is_set():
            due = min(self._next_tick, self._next_check)
            self.liveness.waiting(due)
            batch = self._collect(max(0.0, due - self.ports.mono()))
            if any(w.reason == WakeReason.STOP for w in batch) or self._stopping.is_set():
                break
            self.liveness.working()
            if self.failpoints is not None:  # a test hook (failpoints.py); None in production
                self.failpoints.hit("pass")
            try:
                self._handle(batch)
                self._received_after_pass = self._pending.received
                self._passed_at = time.monotonic()
            except Exception as e:
                # A bug or an adapter error nobody foresaw must not end the daemon: say so,
                # answer waiting REST calls, and try again soon.
                log.exception("reconcile pass crashed", error=str(e))
                metrics.TICKS.labels(Trigger.CRASHED).inc()
                self._fail_pending(batch, e)
                self._retry.cap = CRASH_RETRY_MAX_SECONDS
                self._next_tick = self.ports.mono() + self._retry.failed(self.ports.mono())
        if pinger is not None:
            pinger.stop()
        self.liveness.stopped()
        self._fail_pending(batch)
        systemd.notify("STOPPING=1")
        self.on_stop()
        self._note_role()
        log.info("stopped")

    def _collect(self, timeout: float) -> list[Wake]:
        """Wait for the first wake-up (or the tick), then take whatever else is queued.

        Leading edge, then group commit: the first row event after a quiet spell is applied
        at once (no window to wait out); events that arrive while that pass runs are merged
        in `PendingRows` and all go into the next pass, so a burst costs as many passes as
        it outlasts passes, never one per event.
        """
        try:
            batch = [self._queue.get(timeout=timeout)]
        except queue.Empty:
            return [Wake(WakeReason.TIMER)]
        if batch[0].reason == WakeReason.ROWS and self._in_burst():
            self._gather_burst()
        while True:
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                return batch

    def _in_burst(self) -> bool:
        """Row events arrived while the last pass ran, faster than BURST_RATE: a burst."""
        return in_burst(
            self._received_after_pass - self._received_at_take,
            self._passed_at - self._took_at,
        )

    def _gather_burst(self) -> None:
        """In a burst, let more of it gather before the next pass: until the events pause for
        BURST_QUIET_SECONDS, at most BURST_MAX_SECONDS. Every pass of a burst rewrites the
        instances that took ids (a `_reload` bump each: their workers reload), so without this
        a burst of single creates costs a write per instance per pass instead of a few per
        burst; an event after a quiet spell never waits (the leading edge)."""
        deadline = time.monotonic() + BURST_MAX_SECONDS
        while time.monotonic() < deadline and not self._stopping.is_set():
            seen = self._pending.received
            self._stopping.wait(BURST_QUIET_SECONDS)
            if self._pending.received == seen:
                return

    def _handle(self, batch: list[Wake]) -> None:
        reasons = {w.reason for w in batch}
        self._note_role()
        if WakeReason.POLICY in reasons or WakeReason.RELOAD in reasons:
            self.load_policy("SIGHUP" if WakeReason.RELOAD in reasons else "file changed")
        orchestrations = [w for w in batch if w.reason == WakeReason.ORCHESTRATE]
        for w in orchestrations:
            assert w.kind is not None
            self.state.request_rebalance(w.kind, w.overrides)
        # kinds whose ids the row events' hints, checked against the database, changed
        hints, overflowed = self._pending.take()
        self._received_at_take = self._pending.received
        self._took_at = time.monotonic()
        changed = self._patch_rows(hints)
        now = self.ports.mono()
        # Too many hints to hold: they were dropped, and a full pass reads the truth instead.
        tick_due = (
            now >= self._next_tick
            or overflowed
            or bool({WakeReason.POLICY, WakeReason.RELOAD, WakeReason.TICK} & reasons)
        )
        if overflowed:
            metrics.EVENTS_REJECTED.labels("mqtt", "overflow").inc()
        if WakeReason.LEADER in reasons and self._was_leader:
            result = self._pass(Trigger.LEADER, full=True)  # a new leader starts from a full view
        elif tick_due or orchestrations:
            result = self._pass(self._full_trigger(reasons, tick_due), full=True)
        elif changed or WakeReason.POD in reasons or now >= self._next_check:
            trigger = (
                Trigger.EVENT
                if changed
                else Trigger.POD
                if WakeReason.POD in reasons
                else Trigger.HEARTBEAT
            )
            # Only the kinds something happened to; a heartbeat check covers them all.
            touched = (
                None
                if now >= self._next_check
                else changed | {w.kind for w in batch if w.reason == WakeReason.POD and w.kind}
            )
            result = self._pass(trigger, full=False, kinds=touched)
        else:
            return  # e.g. a duplicated row event: nothing new to plan
        for w in orchestrations:
            if w.reply is not None:
                w.reply.set_result(result)

    @staticmethod
    def _full_trigger(reasons: set[WakeReason], tick_due: bool) -> Trigger:
        """What a full pass is counted and logged under: a policy edit (or SIGHUP) wins over
        the tick it makes due, so the log says why the fleet changed."""
        if {WakeReason.POLICY, WakeReason.RELOAD} & reasons:
            return Trigger.POLICY
        return Trigger.TICK if tick_due else Trigger.ORCHESTRATE

    def _note_role(self) -> None:
        """Leader or standby, as metrics and the log should say."""
        leadership = self.ports.leadership
        if leadership is None:
            return
        # The election counts transitions itself (a win and a loss between two passes are
        # both counted there); the metric follows that count, so it agrees with /v1/status.
        counted = leadership.transitions - self._transitions_counted
        if counted > 0:
            metrics.LEADER_TRANSITIONS.inc(counted)
            self._transitions_counted = leadership.transitions
        leading = leadership.is_leader
        if leading == self._was_leader:
            return
        self._was_leader = leading
        metrics.LEADER.labels(leadership.identity).set(1 if leading else 0)
        log.info("role", role="leader" if leading else "standby", identity=leadership.identity)

    def _patch_rows(self, events: list[RowEvent]) -> set[str]:
        return patch_rows_from_hints(
            self.ports.rows, self.state, events, self._forged_log, self._unverified_log
        )

    def _pass(self, trigger: Trigger, *, full: bool, kinds: set[str] | None = None) -> PassResult:
        loaded = self.state.policy.loaded
        assert loaded is not None
        metrics.TICKS.labels(trigger).inc()
        deadline = Deadline.start(self.pass_budget, self.ports.mono)
        with metrics.TICK_SECONDS.time():
            result = run_pass(
                self.ports, self.state, trigger=trigger, full=full, kinds=kinds, deadline=deadline
            )
        self.passes += 1
        assert self.read is not None
        self.pending.record(result, self.ports.wall(), self.state.policies(), self.read.role())
        now = self.ports.mono()
        tick = loaded.policy.tick_seconds
        if result.failed or self.state.sources.blind:
            # Something was blind or failed: look again soon (doubling up to the tick) rather
            # than a whole tick later, so the fleet converges quickly when a server returns.
            self._retry.cap = tick
            delay = self._retry.failed(now)
            self._next_tick = min(self._next_tick if not full else now + tick, now + delay)
        else:
            self._retry.succeeded()
            if full:
                self._next_tick = now + tick
            if result.left:  # the budget, not a fault, stopped the plan: on with it at once
                self._next_tick = now
        if kinds is None:  # a pass over every kind also judged every kind's silence
            self._next_check = now + self._heartbeat_interval()
        if result.plan.ops:
            ok = len(result.applied)
            log.info(
                "reconciled",
                trigger=trigger,
                ops=len(result.plan.ops),
                applied=ok,
                failed=len(result.failed),
                left=len(result.left),
                seconds=round(result.seconds, 3),
            )
        return result

    def _heartbeat_interval(self) -> float:
        """Silence is judged between ticks too: a light pass (no database read) every third
        of the shortest heartbeat timeout, so a silent worker is replaced about on time."""
        if self.ports.heartbeats is None:
            return float("inf")
        timeouts = [
            p.heartbeat.timeout_seconds
            for p in self.state.policies().values()
            if p.heartbeat.enabled
        ]
        return min(timeouts) / 3 if timeouts else float("inf")

    def _fail_pending(self, batch: list[Wake], error: Exception | None = None) -> None:
        """Answer REST callers still waiting: with the error, or because the daemon stops."""
        if error is None:
            while True:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
        for w in batch:
            if w.reply is not None and not w.reply.done():
                w.reply.set_exception(error or RuntimeError("daemon is stopping"))

    def _install_signals(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # tests run the loop in a thread; they call stop() and wake() directly
        signal.signal(signal.SIGHUP, lambda *_: self.wake(Wake(WakeReason.RELOAD)))
        signal.signal(signal.SIGTERM, lambda *_: self.stop())
        signal.signal(signal.SIGINT, lambda *_: self.stop())
