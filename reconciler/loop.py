"""The daemon: one loop that reconciles on a timer and whenever something it watches changes.

Every input (the tick timer, policy.yaml edits, SIGHUP, row events, pod changes, REST calls)
becomes a `Wake` on one queue; a single thread drains the queue and runs the reconciler, so
no two passes ever run at once and bursts coalesce into one pass.
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

from reconciler import metrics, systemd
from reconciler.events import RowEvent
from reconciler.logs import log
from reconciler.model import Pod
from reconciler.podspec import PodTemplate, TemplateError, load_pod_template
from reconciler.policy import KindPolicy, LoadedPolicy, PolicyError, load_policy
from reconciler.reconcile import PassResult, Reconciler

# Row events arriving within this window after the first one are applied in the same pass:
# 5,000 `c` messages in a second become a handful of ZooKeeper writes, not 5,000.
COALESCE_SECONDS = 0.05
COALESCE_MAX_SECONDS = 0.5


@dataclass
class Wake:
    """Why the loop should run now."""

    # "timer" (tick or heartbeat check due), "tick" (full pass now), "policy" (file changed),
    # "reload" (SIGHUP), "rows", "pod", "orchestrate", "stop"
    reason: str
    rows: RowEvent | None = None
    kind: str | None = None
    overrides: dict[str, int] | None = None
    reply: Future[PassResult] | None = None


@dataclass
class Daemon:
    policy_path: Path
    reconciler: Reconciler
    # Called with the new templates after every successful policy load (the kube adapter
    # and the pod watcher render pods from them).
    on_templates: Callable[[dict[str, PodTemplate]], None] = lambda _t: None
    # Extra health checks for /readyz: name -> "is it reachable" (ZooKeeper, apiserver).
    readiness: dict[str, Callable[[], bool]] = field(default_factory=dict)
    # The pod watcher's current view of a kind's pods (None until its first list): status
    # and /metrics show pods as they are now, not as the last pass saw them before it acted.
    live_pods: Callable[[str], dict[str, Pod] | None] | None = None
    clock: Callable[[], float] = time.time

    loaded: LoadedPolicy | None = None
    policy_error: str | None = None
    last_pass: PassResult | None = None
    last_pass_at: float | None = None
    _queue: queue.Queue[Wake] = field(default_factory=queue.Queue)
    _stopping: threading.Event = field(default_factory=threading.Event)
    _next_tick: float = 0.0
    _next_check: float = float("inf")  # next light pass for heartbeat silence
    _retry_seconds: float = 0.0

    # --- inputs (any thread) ------------------------------------------------------------

    def wake(self, item: Wake) -> None:
        self._queue.put(item)

    def on_row_event(self, event: RowEvent) -> None:
        metrics.EVENTS.labels("mqtt").inc()
        self.wake(Wake("rows", rows=event))

    def on_pod_change(self, kind: str, pod: Pod | None, event_type: str) -> None:
        # Only changes the planner acts on wake the loop: a pod that died or vanished.
        if pod is None or pod.phase not in ("Running", "Pending") or event_type == "DELETED":
            self.wake(Wake("pod", kind=kind))

    def orchestrate(
        self, kind: str, overrides: dict[str, int] | None, timeout: float = 60.0
    ) -> PassResult:
        """Rebalance `kind` now (REST); blocks until the pass has run."""
        reply: Future[PassResult] = Future()
        self.wake(Wake("orchestrate", kind=kind, overrides=overrides, reply=reply))
        return reply.result(timeout)

    def stop(self) -> None:
        self._stopping.set()
        self.wake(Wake("stop"))

    # --- the loop -----------------------------------------------------------------------

    def load_policy(self, why: str) -> bool:
        """Load policy.yaml; on any error keep the last good policy and say why."""
        try:
            loaded = load_policy(self.policy_path)
            templates = {
                kind: load_pod_template(
                    kind, p.namespace, p.instance_name, loaded.template_path(kind)
                )
                for kind, p in loaded.policy.kinds.items()
            }
        except (PolicyError, TemplateError) as e:
            self.policy_error = str(e)
            metrics.POLICY_RELOADS.labels("failed").inc()
            kept = self.loaded.sha256[:12] if self.loaded else None
            log.error("policy rejected", why=why, error=str(e), keeping=kept)
            return False
        if self.loaded is not None and loaded.sha256 == self.loaded.sha256:
            self.policy_error = None
            if why == "SIGHUP":  # asked for explicitly: say so (`systemctl reload` feedback)
                log.info("policy unchanged", why=why, sha256=loaded.sha256[:12])
            return False  # same bytes (an editor's touch): nothing to do
        metrics.POLICY_RELOADS.labels("ok").inc()
        if self.loaded is not None:
            metrics.POLICY_INFO.remove(self.loaded.sha256)
        metrics.POLICY_INFO.labels(loaded.sha256).set(1)
        self.loaded, self.policy_error = loaded, None
        # REST overrides last until policy.yaml next changes (documented in the README).
        self.reconciler.overrides.clear()
        self.on_templates(templates)
        log.info(
            "policy loaded",
            why=why,
            sha256=loaded.sha256[:12],
            kinds=sorted(loaded.policy.kinds),
            tick_seconds=loaded.policy.tick_seconds,
        )
        return True

    def run(self) -> None:
        """Run until stop(), SIGTERM or SIGINT; the pass in flight finishes first."""
        if not self.load_policy("start") and self.loaded is None:
            raise SystemExit(f"no valid policy: {self.policy_error}")
        self._install_signals()
        systemd.notify("READY=1", f"STATUS=reconciling {self.policy_path}")
        watchdog = systemd.watchdog_interval()
        batch: list[Wake] = []
        while not self._stopping.is_set():
            timeout = max(0.0, min(self._next_tick, self._next_check) - self.clock())
            if watchdog is not None:
                timeout = min(timeout, watchdog)
            batch = self._collect(timeout)
            systemd.notify("WATCHDOG=1")
            if any(w.reason == "stop" for w in batch) or self._stopping.is_set():
                break
            try:
                self._handle(batch)
            except Exception as e:
                # A bug or an adapter error nobody foresaw must not end the daemon: say so,
                # answer waiting REST calls, and try again soon.
                log.exception("reconcile pass crashed", error=str(e))
                metrics.TICKS.labels("crashed").inc()
                self._fail_pending(batch, e)
                self._retry_seconds = min(max(self._retry_seconds * 2, 1.0), 60.0)
                self._next_tick = self.clock() + self._retry_seconds
        self._fail_pending(batch)
        systemd.notify("STOPPING=1")
        log.info("stopped")

    def _collect(self, timeout: float) -> list[Wake]:
        """Wait for the first wake-up (or the tick), then take whatever else is queued.

        Row events are gathered while they keep coming (quiet for COALESCE_SECONDS, at most
        COALESCE_MAX_SECONDS): a burst becomes a few passes, and the loop leaves the CPU to
        the MQTT thread meanwhile, so the broker's queue for us does not overflow.
        """
        try:
            batch = [self._queue.get(timeout=timeout)]
        except queue.Empty:
            return [Wake("timer")]
        deadline = time.monotonic() + COALESCE_MAX_SECONDS
        while True:
            try:
                batch.append(self._queue.get_nowait())
                continue
            except queue.Empty:
                pass
            if batch[-1].reason != "rows" or time.monotonic() >= deadline:
                return batch
            try:
                batch.append(self._queue.get(timeout=COALESCE_SECONDS))
            except queue.Empty:
                return batch

    def _handle(self, batch: list[Wake]) -> None:
        assert self.loaded is not None
        reasons = {w.reason for w in batch}
        if "policy" in reasons or "reload" in reasons:
            self.load_policy("SIGHUP" if "reload" in reasons else "file changed")
        orchestrations = [w for w in batch if w.reason == "orchestrate"]
        for w in orchestrations:
            assert w.kind is not None
            if w.overrides:
                self.reconciler.overrides[w.kind] = {
                    **self.reconciler.overrides.get(w.kind, {}),
                    **w.overrides,
                }
            self.reconciler.rebalance_requested.add(w.kind)
        changed: set[str] = set()  # kinds whose ids a row event changed
        for w in batch:
            if w.rows is not None:
                changed |= self._patch_rows(w.rows)
        now = self.clock()
        tick_due = now >= self._next_tick or bool({"policy", "reload", "tick"} & reasons)
        if tick_due or orchestrations:
            result = self._pass("tick" if tick_due else "orchestrate", read_rows=True)
        elif changed or "pod" in reasons or now >= self._next_check:
            trigger = "event" if changed else "pod" if "pod" in reasons else "heartbeat"
            # Only the kinds something happened to; a heartbeat check covers them all.
            touched = (
                None
                if now >= self._next_check
                else changed | {w.kind for w in batch if w.reason == "pod" and w.kind}
            )
            result = self._pass(trigger, read_rows=False, kinds=touched)
        else:
            return  # e.g. a duplicated row event: nothing new to plan
        for w in orchestrations:
            if w.reply is not None:
                w.reply.set_result(result)

    def _patch_rows(self, event: RowEvent) -> set[str]:
        assert self.loaded is not None
        kinds = [k for k, p in self.loaded.policy.kinds.items() if p.table == event.table]
        if not kinds:  # ProtocolMeta, DeviceMeta, ...: not orchestrated
            metrics.EVENTS_IGNORED.labels("mqtt", "other-table").inc()
        return {k for k in kinds if self.reconciler.patch_rows(k, event.added, event.removed)}

    def _pass(self, trigger: str, *, read_rows: bool, kinds: set[str] | None = None) -> PassResult:
        assert self.loaded is not None
        metrics.TICKS.labels(trigger).inc()
        with metrics.TICK_SECONDS.time():
            result = self.reconciler.run(
                self.loaded, trigger=trigger, read_rows=read_rows, kinds=kinds
            )
        now = self.clock()
        self.last_pass, self.last_pass_at = result, now
        tick = self.loaded.policy.tick_seconds
        if result.failed or self.reconciler.source_errors:
            # Something was blind or failed: look again soon (doubling up to the tick) rather
            # than a whole tick later, so the fleet converges quickly when a server returns.
            self._retry_seconds = min(max(self._retry_seconds * 2, 1.0), tick)
            self._next_tick = min(
                self._next_tick if not read_rows else now + tick, now + self._retry_seconds
            )
        else:
            self._retry_seconds = 0.0
            if read_rows:
                self._next_tick = now + tick
        if kinds is None:  # a pass over every kind also judged every kind's silence
            self._next_check = now + self._heartbeat_interval()
        if result.plan.ops:
            ok = sum(o.result == "ok" for o in result.outcomes)
            log.info(
                "reconciled",
                trigger=trigger,
                ops=len(result.plan.ops),
                applied=ok,
                failed=len(result.failed),
                seconds=round(result.seconds, 3),
            )
        return result

    def _heartbeat_interval(self) -> float:
        """Silence is judged between ticks too: a light pass (no database read) every third
        of the shortest heartbeat timeout, so a silent worker is replaced about on time."""
        if self.reconciler.heartbeats is None or self.loaded is None:
            return float("inf")
        timeouts = [
            p.heartbeat.timeout_seconds
            for p in self.loaded.policy.kinds.values()
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
        signal.signal(signal.SIGHUP, lambda *_: self.wake(Wake("reload")))
        signal.signal(signal.SIGTERM, lambda *_: self.stop())
        signal.signal(signal.SIGINT, lambda *_: self.stop())

    def watch_policy_file(self) -> threading.Thread:
        """Reload policy.yaml when it changes (watchfiles), in a daemon thread."""
        from watchfiles import watch

        # Not resolved: in a ConfigMap volume policy.yaml is a symlink into a `..<timestamp>`
        # folder that every update replaces (by swapping the `..data` link); the resolved
        # path would point at a folder that no longer exists after the first update.
        target = self.policy_path.absolute()

        def run() -> None:
            # Watch the folder, not the file: editors and ConfigMap updates replace the file
            # (rename or symlink swap), which a watch on the old inode would miss.
            for changes in watch(
                target.parent,
                stop_event=self._stopping,
                debounce=200,
                rust_timeout=1000,
                yield_on_timeout=False,
            ):
                if any(
                    Path(p).name == target.name or Path(p).name.startswith("..") for _, p in changes
                ):
                    self.wake(Wake("policy"))

        thread = threading.Thread(target=run, name="policy-watch", daemon=True)
        thread.start()
        return thread

    # --- what the API and `status` show ---------------------------------------------------

    def policies(self) -> dict[str, KindPolicy]:
        return self.reconciler.policies(self.loaded) if self.loaded else {}

    def heartbeat_ages(self, kind: str, now: float) -> dict[int, float]:
        """Seconds since each current instance of `kind` was last heard, read live (not as
        of the last pass) so `status` and /metrics show the age an operator would expect."""
        source = self.reconciler.heartbeats
        policy = self.loaded.policy.kinds.get(kind) if self.loaded else None
        if source is None or policy is None or not policy.heartbeat.enabled:
            return {}
        current = self.reconciler.assignments.get(kind, {})
        seen = source.snapshot(kind).last_seen
        return {i: now - t for i, t in seen.items() if i in current}

    def _pods_now(self, kind: str) -> dict[str, Pod] | None:
        live = self.live_pods(kind) if self.live_pods is not None else None
        if live is not None:
            return live
        observed = self.reconciler.last_observed.get(kind)
        return observed.pods if observed else None

    def refresh_metrics(self) -> None:
        """Gauges that change between passes, set at scrape time."""
        now = self.clock()
        for kind in self.policies():
            ages = self.heartbeat_ages(kind, now)
            metrics.publish(metrics.HEARTBEAT_AGE, kind, {(str(i),): a for i, a in ages.items()})
            pods = self._pods_now(kind)
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

    def status(self) -> dict[str, Any]:
        now = self.clock()
        kinds: dict[str, Any] = {}
        for kind, policy in self.policies().items():
            report = self.reconciler.last_reports.get(kind)
            assignment = self.reconciler.assignments.get(kind, {})
            pods = self._pods_now(kind) or {}
            ages = self.heartbeat_ages(kind, now)
            kinds[kind] = {
                "rows": report.rows if report else None,
                "instances": len(assignment),
                "capacity": report.capacity if report else None,
                "unassigned": report.unassigned if report else None,
                "error": report.error if report else None,
                "blind": list(report.blind) if report else [],
                "heartbeat": report.heartbeat_note if report else None,
                "autoscale": (
                    self.reconciler.autoscaler.status(kind, policy)
                    if self.reconciler.autoscaler is not None
                    else None
                ),
                "maxInstances": policy.max_instances,
                "resourcePerInstance": policy.resource_per_instance,
                "overrides": self.reconciler.overrides.get(kind, {}),
                "instanceList": [
                    {
                        "instanceId": str(i),
                        "used": inst.used,
                        "count": inst.count,
                        "reloadTimes": inst.reload_times,
                        "pod": f"{policy.instance_name}-{i}",
                        "phase": _phase(pods.get(f"{policy.instance_name}-{i}")),
                        "heartbeatAge": round(ages[i], 1) if i in ages else None,
                    }
                    for i, inst in sorted(assignment.items())
                ],
            }
        return {
            "policy": {
                "path": str(self.policy_path),
                "sha256": self.loaded.sha256 if self.loaded else None,
                "error": self.policy_error,
            },
            "lastPass": {
                "at": self.last_pass_at,
                "trigger": self.last_pass.trigger if self.last_pass else None,
                "ops": len(self.last_pass.plan.ops) if self.last_pass else 0,
                "failed": [o.error for o in self.last_pass.failed] if self.last_pass else [],
            },
            "sources": dict(self.reconciler.source_errors),
            "kinds": kinds,
        }

    def ready(self) -> tuple[bool, dict[str, str]]:
        problems: dict[str, str] = {}
        if self.loaded is None:
            problems["policy"] = self.policy_error or "not loaded"
        for name, check in self.readiness.items():
            try:
                if not check():
                    problems[name] = "unreachable"
            except Exception as e:
                problems[name] = str(e)
        return not problems, problems


def _phase(pod: Pod | None) -> str:
    if pod is None:
        return "Missing"
    return f"{pod.phase} (terminating)" if pod.terminating else pod.phase
