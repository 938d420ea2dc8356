"""Scenario `failover`: a leader and a warm standby, both on 500k Things + 500k Rules (issue 28).

Two `reconciler run` processes (MQTT on, tickSeconds 30, ZooKeeper session timeout 10 s: the
defaults) on a fresh chroot. Once another client sees every row assigned and the standby is
warm, as its own /metrics say (a pass done; `reconciler_rows` and the sum of
`reconciler_instance_used` equal to each table's rows; a pod phase for every instance; MQTT
subscribed), figures:
- `standby_rss_1m_mb`: the standby's VmRSS then (its VmHWM is shown beside, not in the line).
- `failover_1m_s`: SIGKILL the leader, then at once commit a new Thing row and publish its
  `c`; seconds from the signal until the bench's kazoo client (data watches on every Thing
  `resources` node) reads the id. The new leader applies the row by the event it heard as a
  standby or by its first pass, whichever comes first. Goal: the session timeout + 2 s.
- `handoff_1m_s`: a fresh standby replaces the killed leader; once it is warm, SIGTERM the
  leader (it deletes its lock node on the way out), and the same.

Baseline: none. bench/failover.py measures the same two signals at 2,000 ids on a rig of its
own; running it here would add a second pair of daemons for a figure already in
docs/benchmarks.md ("Failover").
"""

from __future__ import annotations

import math
import signal
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.churn import KINDS, SIZING, TICK, wait_converged
from bench.daemon import BenchDaemon, Scrape, parse_metrics
from bench.latency import _publisher, message
from bench.world import Database, Slot, World
from bench.zkview import IdWatcher
from tests.support.fleet import write_policy
from tests.support.processes import DaemonProcess, wait_for_leader

SESSION = 10.0  # RECONCILER_ZK_SESSION_TIMEOUT's default
ROUNDS = 2  # SIGKILL, then SIGTERM: each adds a Thing


@dataclass(frozen=True)
class HaRun:
    warm_s: float  # both daemons started -> every id assigned and the standby warm
    standby_rss_mib: float  # VmRSS of the warm standby before the failover
    standby_hwm_mib: float  # its VmHWM then
    failover_s: float  # SIGKILL -> the new row read in ZooKeeper
    handoff_s: float  # SIGTERM -> the new row read in ZooKeeper
    session_s: float
    # The daemons that wrote Thing nodes after the SIGKILL (their logs); if the row never
    # showed up, each daemon's role and last log events.
    failover_by: str = "-"
    handoff_by: str = "-"  # the same after the SIGTERM: the new leader, or the old one too


def _status_mib(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} for pid {pid}")


def warm(s: Scrape, rows: dict[str, int]) -> bool:
    """The daemon has run a pass over the current rows, assignment and pods, and hears MQTT."""
    if s.passes < 1 or s.value("reconciler_source_up", source="mqtt") != 1:
        return False
    for kind, n in rows.items():
        used = [
            v
            for (name, labels), v in s.samples.items()
            if name == "reconciler_instance_used" and ("resource", kind) in labels
        ]
        pods = s.total("reconciler_pod_phase", resource=kind)
        if s.value("reconciler_rows", resource=kind) != n or sum(used) != n or pods < len(used):
            return False
    return True


def _scrape(d: DaemonProcess) -> Scrape | None:
    try:
        r = httpx.get(f"http://127.0.0.1:{d.port}/metrics", timeout=10)
    except httpx.HTTPError:
        return None
    return parse_metrics(r.text, time.monotonic()) if r.status_code == 200 else None


def _wait_warm(d: DaemonProcess, rows: dict[str, int], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not ((s := _scrape(d)) is not None and warm(s, rows)):
        if not d.alive or time.monotonic() > deadline:
            raise TimeoutError(f"standby {d.identity} not warm within {timeout:g} s")
        time.sleep(1.0)


class Pair:
    """The daemons of the scenario, each with its own identity, API port and MQTT client id;
    every one still running is stopped on exit."""

    def __init__(self, world: World, slot: Slot, db: Database, policy: Path) -> None:
        self.world, self.slot, self.db, self.policy = world, slot, db, policy
        self.daemons: list[DaemonProcess] = []

    def start(self) -> DaemonProcess:
        env = {
            "RECONCILER_MQTT_BROKERS": self.world.mq.url,
            "RECONCILER_MQTT_CLIENT_ID": f"bench-ha-{uuid.uuid4().hex[:8]}",
            "RECONCILER_MQTT_RECONNECT_SECONDS": "1",
            "RECONCILER_KAFKA_BOOTSTRAP": "",
        }
        d = DaemonProcess(
            self.slot.work, self.slot.zk_hosts, self.db.url, self.world.kube, self.policy,
            f"ha{len(self.daemons)}", session_timeout=SESSION, env=env,
        )  # fmt: skip
        self.daemons.append(d)
        return d

    def close(self) -> None:
        for d in self.daemons:
            d.close()


def _signal_and_time(
    leader: DaemonProcess,
    sig: int,
    db: Database,
    watcher: IdWatcher,
    world: World,
    pair: list[DaemonProcess],
) -> tuple[float, str]:
    """Signal the leader, then commit a new row and publish its `c`: (signal -> id read, the
    daemons that logged a Thing write after the signal, by their logs)."""
    rid = str(uuid.uuid4())
    watcher.expect([rid])
    pub = _publisher(world)
    try:
        wall = time.time()
        leader.signal(sig)
        t0 = time.monotonic()
        db.insert("Thing", rid)
        pub.publish("cm/notify", message(rid), qos=1)
        try:
            took = watcher.wait([rid], SESSION + 60)[rid] - t0
        except TimeoutError:
            took = math.nan  # reported as FAILED, with what each daemon said last
    finally:
        pub.loop_stop()
        pub.disconnect()
    time.sleep(0.5)  # the log lines of that write may still be in the pipe
    writers = [
        d.identity
        for d in pair
        if any(
            e.get("event") == "operation applied"
            and e.get("op") == "WriteInstance"
            and e.get("resource") == "Thing"
            for e in d.events(after=wall)
        )
    ]
    if math.isnan(took):
        return took, "; ".join(f"{d.identity} ({_last_words(d)})" for d in pair)
    return took, ",".join(writers) or "-"


def _last_words(d: DaemonProcess) -> str:
    """Its role and its last log events, for a row that never showed up."""
    role = d.role() if d.alive else "exited"
    tail = [str(e.get("event")) for e in d.events()[-5:]]
    return f"{role}; last events: {', '.join(tail)}"


def ha_run(world: World, db: Database, *, tag: str, timeout: float = 900) -> HaRun:
    # Room for the two Things the rounds add: at the policy's bounds (100 instances of 5000) a
    # full kind would leave the new row unassigned, and no failover would ever show it.
    capacity = SIZING["resourcePerInstance"] * SIZING["maxInstances"]
    if (over := db.count("Thing") + ROUNDS - capacity) > 0:
        db.delete_some("Thing", over)
    rows = {k: db.count(k) for k in KINDS}
    with world.slot(tag) as slot:
        slot.work.mkdir(parents=True, exist_ok=True)
        policy = write_policy(
            slot.work / "policy.yaml", slot.namespace, tick=TICK, **{k: SIZING for k in KINDS}
        )
        started = time.monotonic()
        pair = Pair(world, slot, db, policy)
        try:
            both = [pair.start(), pair.start()]
            leader = wait_for_leader(both, timeout=timeout)
            view = BenchDaemon(leader)  # its /metrics only: closing it would stop the daemon
            wait_converged(view, slot.zk_hosts, rows, True, timeout)
            view.http.close()
            standby = next(x for x in both if x is not leader)
            _wait_warm(standby, rows, timeout)
            warm_s = time.monotonic() - started
            rss = _status_mib(standby.proc.pid, "VmRSS")
            hwm = _status_mib(standby.proc.pid, "VmHWM")
            watcher = IdWatcher(slot.zk_hosts)
            try:
                failover, failover_by = _signal_and_time(
                    leader, signal.SIGKILL, db, watcher, world, both
                )
                leader.close()
                if math.isnan(failover):  # no leader applies rows: nothing to hand off
                    return HaRun(warm_s, rss, hwm, failover, math.nan, SESSION, failover_by, "-")
                rows["Thing"] += 1
                fresh = pair.start()
                leader = wait_for_leader([standby, fresh], timeout=60)
                _wait_warm(fresh, rows, timeout)
                handoff, handoff_by = _signal_and_time(
                    leader, signal.SIGTERM, db, watcher, world, [leader, fresh]
                )
            finally:
                watcher.close()
        finally:
            pair.close()
    return HaRun(warm_s, rss, hwm, failover, handoff, SESSION, failover_by, handoff_by)
