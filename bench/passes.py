"""Scenarios 1 and 4: what a pass costs once the fleet has converged, and the first pass.

A `reconciler run` process at tickSeconds 1 on a fresh ZooKeeper chroot; a separate kazoo
client waits until every id is assigned (sum of `used` == rows), the run settles (no operation
over two ticks), then a window of ticks is measured from the daemon's /metrics (Δsum/Δcount of
the pass histogram) and from ZooKeeper's stats (nodes written, by the external client).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from bench.daemon import FULL_READ, BenchDaemon, Scrape, daemon, mean_pass_ms, peak_rss_mib
from bench.world import Database, World
from bench.zkview import assigned, connect, stamps, writes_between
from tests.support.fleet import write_policy

KINDS = ("Thing", "Rule")
BASELINE_ENV = {FULL_READ: "0"}
TICK = 1.0  # tickSeconds: the policy's minimum, so a pass's cost is not hidden by the tick


@dataclass(frozen=True)
class Sizing:
    resource_per_instance: int
    max_instances: int
    init_instances: int = 1

    def policy(self) -> dict[str, int]:
        return {
            "resourcePerInstance": self.resource_per_instance,
            "maxInstances": self.max_instances,
            "initInstances": self.init_instances,
        }


@dataclass(frozen=True)
class PassRun:
    assigned_s: float  # daemon started -> the external client sees every id assigned
    first_pass_s: float | None  # the first pass with operations, as the daemon timed it
    first_pass_source: str
    converged_ms: float  # mean pass in the window
    window_passes: int
    window_ticks: int
    zk_writes_per_pass: float  # the external client's count
    daemon_writes_per_pass: float  # reconciler_operations_total{op="WriteInstance"} deltas
    ops_per_pass: float
    settled: bool
    rss_mib: float
    instances: int
    zk_read_bytes_per_pass: float = 0.0  # reconciler_zookeeper_read_bytes_total deltas
    db_id_reads_per_pass: float = 0.0  # reconciler_database_id_reads_total deltas


def _first_pass(d: BenchDaemon, first: Scrape | None) -> tuple[float | None, str]:
    """The histogram's first observation if we read it while it was the only one; else the
    daemon's `reconciled` log line of that pass (same pass, timed inside run_pass)."""
    if first is not None and first.passes == 1:
        return first.pass_seconds, "histogram"
    deadline = time.monotonic() + 10  # the log line may still be on its way through the pipe
    while not (log := d.reconciled()) and time.monotonic() < deadline:
        time.sleep(0.05)
    if log:
        return float(log[0]["seconds"]), f"log ({log[0].get('trigger')} pass)"  # type: ignore[arg-type]
    return None, "-"


def _settle(d: BenchDaemon, timeout: float) -> tuple[Scrape, bool]:
    """Wait until two tick passes go by without an operation (pod slow-start, kwok's status
    updates); gives up after `timeout` and says so rather than measure a busy window."""
    deadline = time.monotonic() + timeout
    prev = d.wait_scrape(lambda s: s.idle, timeout, "an idle moment")
    while time.monotonic() < deadline:
        s = d.wait_scrape(
            lambda s, p=prev: s.idle and s.ticks() >= p.ticks() + 2,
            max(1.0, deadline - time.monotonic()) + 60,
            "two ticks",
        )
        if s.operations() == prev.operations():
            return s, True
        prev = s
    return prev, False


def pass_run(
    world: World,
    db: Database,
    rows: dict[str, int],
    sizing: Sizing,
    *,
    tag: str,
    window_ticks: int,
    env: dict[str, str] | None = None,
    timeout: float = 900,
) -> PassRun:
    with world.slot(tag) as slot:
        slot.work.mkdir(parents=True, exist_ok=True)
        policy = write_policy(
            slot.work / "policy.yaml",
            slot.namespace,
            tick=TICK,
            **{k: sizing.policy() for k in KINDS},
        )
        kazoo = connect(slot.zk_hosts)
        try:
            with daemon(world, slot, db.url, policy, env=env) as d:
                start = time.monotonic()
                first: Scrape | None = None
                # Poll ZooKeeper (not the daemon) twice a second: cheap against a pass of
                # seconds, and it does not take the daemon's GIL as a /metrics read would.
                while any(assigned(kazoo, k) != n for k, n in rows.items()):
                    if time.monotonic() - start > timeout:
                        raise TimeoutError(f"{tag}: ids not all assigned in {timeout:g} s")
                    if first is None:
                        s = d.try_scrape()
                        first = s if s is not None and s.passes >= 1 else None
                    time.sleep(0.5)
                assigned_s = time.monotonic() - start
                if first is None:  # the ids are written before the pass ends (pods next)
                    first = d.wait_scrape(lambda s: s.passes >= 1, timeout, "the first pass")
                first_s, source = _first_pass(d, first)
                _, settled = _settle(d, timeout=min(timeout, 300))
                z0 = stamps(kazoo, KINDS)
                # Both ends between passes, so the window holds whole passes only.
                before = d.wait_scrape(lambda s: s.idle, timeout, "an idle moment", every=0.05)
                # The window takes at least `window_ticks` ticks: no /metrics read (it takes
                # the daemon's GIL) until then.
                time.sleep(window_ticks * TICK)
                after = d.wait_scrape(
                    lambda s: s.idle and s.ticks() >= before.ticks() + window_ticks,
                    timeout,
                    f"{window_ticks} ticks",
                )
                z1 = stamps(kazoo, KINDS)
                rss = peak_rss_mib(d.pid)
                n = int(after.passes - before.passes)
                daemon_writes = after.total(
                    "reconciler_operations_total", op="WriteInstance", result="ok"
                ) - before.total("reconciler_operations_total", op="WriteInstance", result="ok")
                return PassRun(
                    assigned_s=assigned_s,
                    first_pass_s=first_s,
                    first_pass_source=source,
                    converged_ms=mean_pass_ms(before, after),
                    window_passes=n,
                    window_ticks=int(after.ticks() - before.ticks()),
                    zk_writes_per_pass=writes_between(z0, z1) / n,
                    daemon_writes_per_pass=daemon_writes / n,
                    ops_per_pass=(after.operations() - before.operations()) / n,
                    settled=settled,
                    rss_mib=rss,
                    instances=sum(1 for p in z1 if p.count("/") == 4),
                    zk_read_bytes_per_pass=(
                        after.total("reconciler_zookeeper_read_bytes_total")
                        - before.total("reconciler_zookeeper_read_bytes_total")
                    )
                    / n,
                    db_id_reads_per_pass=(
                        after.total("reconciler_database_id_reads_total")
                        - before.total("reconciler_database_id_reads_total")
                    )
                    / n,
                )
        finally:
            kazoo.stop()
            kazoo.close()
