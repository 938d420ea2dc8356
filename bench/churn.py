"""Scenario `churn`: a converged fleet of 500k Things + 500k Rules under a steady stream of
single `c` and `d` messages (issue 28).

A `reconciler run` process (MQTT on, tickSeconds 30: the schema's default, what production
runs; resourcePerInstance 5000 and maxInstances 200 for both kinds, so the fleet can grow) on a
fresh ZooKeeper chroot. Once another client sees every row of both tables assigned and no
operation has been applied for 3 s, `bench/churn_publish.py`, a process of its own, plays
`--churn-seconds` of messages at `--churn-rate` per second on an absolute schedule: half `c`
(a new row inserted, then published), half `d` (a row deleted, then published: one the stream
created at least 2 s before, or one of the initial rows), each kind half the time.

Figures:
- latency, per message: its publish (the publisher's time.monotonic() just before publish())
  -> the first read by the bench's kazoo client (data watches on every `resources` node of both
  kinds) that shows the change: a `c`'s id on some instance, a `d`'s id gone from every
  instance (the last time its count of holders fell to 0). p50 and p99 over `c` and `d`
  together; a message whose change is never seen (120 s after the last publish) is counted
  apart, not given a latency, and so are the `c` and `d` of a row the stream created and
  deleted that was never placed in between (coalesced: the daemon took both in one pass).
- the daemon's CPU: utime + stime of its process (/proc/<pid>/stat) from the first scheduled
  message until the publisher has its last PUBACK, divided by that wall time, x 100: a
  percentage of one core.
- its peak RSS (VmHWM) once every change was seen (or the wait gave up).
- after the stream: the first tick pass (it may still apply something), then the mean of the
  next tick's pass (Δsum/Δcount of the pass histogram) and the ZooKeeper writes the external
  client counts over it (0 expected).
- the placement: every `resources` node read by another client against the tables' ids at the
  end: ids missing (a row on no instance), duplicated (on more than one), extra (on an
  instance, no row). Any nonzero count is reported as FAILED.

Baseline: the same scenario with MQTT off and a 5 s tick (the daemon converges by its tick
alone): the latency the events buy at this size. It is a second daemon start at a million ids
(a few minutes), so `--skip-baseline` leaves it out.
"""

from __future__ import annotations

import json
import math
import os
import random
import subprocess
import sys
import time
import uuid
from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.daemon import BenchDaemon, Scrape, daemon, mean_pass_ms, peak_rss_mib
from bench.latency import mqtt_events_received
from bench.world import Database, World
from bench.zkview import IdWatcher, assigned, connect, resources, stamps, writes_between
from tests.support.fleet import write_policy

KINDS = ("Thing", "Rule")
TICK = 30.0  # the schema's default tickSeconds
BASE_TICK = 5.0
MIN_AGE = 2.0  # seconds a stream-created row lives at least before the stream deletes it
SEEN_TIMEOUT = 120.0  # after the last publish: a daemon that lags still gets its tail measured
LEAD = 5.0  # seconds for the publisher to start and connect before its first message
# The schema's upper bounds: 500k ids of a kind fill its 100 instances exactly, so the
# schedule never lets a kind's rows exceed the count it started with (see `schedule`).
SIZING = {"resourcePerInstance": 5000, "maxInstances": 100, "initInstances": 1}

ID_READS = "reconciler_database_id_reads_total"
Message = tuple[str, str, str]  # op, table, id


@dataclass(frozen=True)
class ChurnRun:
    messages: int
    publisher_rate: float  # achieved: (n - 1) / (last publish - first publish)
    publisher_late_s: float  # worst lateness of a publish against its schedule
    c_ms: list[float]
    d_ms: list[float]
    unseen: int  # messages whose change was never read in ZooKeeper
    coalesced: int  # the `c` and `d` of rows created and deleted before they were placed
    received: int  # row events the daemon counted (reconciler_events_received_total)
    window_s: float  # first scheduled message -> the publisher's last PUBACK
    cpu_pct: float  # the daemon's CPU over the window, % of one core
    rss_mib: float  # the daemon's VmHWM at the end of the window
    ready_s: float  # daemon start -> every id assigned and 3 s without an operation
    converged_ms: float
    zk_writes_per_pass: float
    missing: int
    duplicated: int
    extra: int
    watch_reads: int  # reads of `resources` nodes by the bench's client during the window
    read_lags_ms: list[float]  # per read: the node's mtime -> our read done
    watcher_parse_s: float  # the bench's time parsing and diffing those reads
    bench_cpu_pct: float  # the bench process's own CPU over the window, % of one core
    window_passes: int  # passes from just before the stream until every change was read
    window_pass_ms: float  # their mean duration (the pass histogram)
    db_id_reads: int  # full reads of a table's ids over the same span


def schedule(
    initial: dict[str, list[str]], n: int, rate: float, seed: int | None = None
) -> list[Message]:
    """`n` messages, each on a kind drawn at random: about half `c` of a new uuid, half `d` of
    a row that exists at that point (half of them a row the stream created at least MIN_AGE
    before, if there is one; else one of the initial rows, never the same twice). A kind's
    rows never exceed its initial count (a `d` comes first): at the policy's bounds a row
    over capacity would go unassigned and its `c` would never be seen."""
    rng = random.Random(seed)
    pools = {k: list(v) for k, v in initial.items()}
    created: dict[str, deque[tuple[int, str]]] = {k: deque() for k in initial}
    min_gap = int(MIN_AGE * rate)
    room = dict.fromkeys(initial, 0)  # rows a kind may gain before it is back at its start
    out: list[Message] = []
    for k in range(n):
        kind = rng.choice(list(initial))
        if room[kind] > 0 and rng.random() < 0.5:
            room[kind] -= 1
            rid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            created[kind].append((k, rid))
            out.append(("c", kind, rid))
            continue
        old = created[kind]
        if old and old[0][0] <= k - min_gap and rng.random() < 0.5:
            rid = old.popleft()[1]
        else:
            pool = pools[kind]
            i = rng.randrange(len(pool))
            pool[i], pool[-1] = pool[-1], pool[i]
            rid = pool.pop()
        room[kind] += 1
        out.append(("d", kind, rid))
    return out


@dataclass(frozen=True)
class Seen:
    c_ms: list[float]
    d_ms: list[float]
    unseen: int  # changes not (yet) read in ZooKeeper
    coalesced: int  # a `c` and the `d` of the same id, the id never placed in between


def latencies(
    records: list[tuple[str, str, str, float]],
    appeared: dict[str, float],
    gone: dict[str, float],
    present: dict[str, int],
) -> Seen:
    """A `c` is seen at its id's first appearance, a `d` at the last time its id's holders
    fell to 0, if that came after the publish and the id is on no instance now. A row the
    stream created and deleted again that never appeared, while no instance holds it, is
    not a change anyone could see: the daemon took both messages in one pass; its `c` and
    `d` count as coalesced, not as unseen."""
    deleted = {rid for rid, op, _t, _at in records if op == "d"}
    created = {rid for rid, op, _t, _at in records if op == "c"}
    c_ms: list[float] = []
    d_ms: list[float] = []
    unseen = coalesced = 0
    for rid, op, _table, at in records:
        never = rid not in appeared and present.get(rid, 0) == 0
        if never and rid in deleted and rid in created:
            coalesced += 1
        elif op == "c":
            t = appeared.get(rid)
            if t is None:
                unseen += 1
            else:
                c_ms.append((t - at) * 1000)
        else:
            t = gone.get(rid)
            if t is None or t < at or present.get(rid, 0) > 0:
                unseen += 1
            else:
                d_ms.append((t - at) * 1000)
    return Seen(c_ms, d_ms, unseen, coalesced)


def placement(rows: set[str], instances: Iterable[list[str]]) -> tuple[int, int, int]:
    """(missing, duplicated, extra): rows on no instance, ids on more than one, ids on an
    instance without a row."""
    held = Counter(rid for ids in instances for rid in ids)
    missing = sum(1 for rid in rows if rid not in held)
    duplicated = sum(1 for n in held.values() if n > 1)
    extra = sum(1 for rid in held if rid not in rows)
    return missing, duplicated, extra


def cpu_seconds(pid: int) -> float:
    """utime + stime of the process (/proc/<pid>/stat fields 14 and 15), seconds."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2 :].split()  # fields from 3 (state) on
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_converged(
    d: BenchDaemon, hosts: str, rows: dict[str, int], mqtt: bool, timeout: float
) -> None:
    """Every row of each kind assigned as another client sees it, MQTT subscribed (if on),
    then 3 s without an operation (the first passes' pod creates are over)."""
    kazoo = connect(hosts)
    deadline = time.monotonic() + timeout
    try:
        while any(assigned(kazoo, k) != n for k, n in rows.items()):
            if not d.proc.alive:
                raise RuntimeError(f"the daemon exited:\n{''.join(d.proc.lines[-20:])}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"ids not all assigned within {timeout:g} s")
            time.sleep(0.5)
    finally:
        kazoo.stop()
        kazoo.close()
    if mqtt:
        d.wait_scrape(lambda s: s.value("reconciler_source_up", source="mqtt") == 1, 60, "MQTT")
    prev = d.scrape()
    while time.monotonic() < deadline:
        time.sleep(3)
        s = d.scrape()
        if s.operations() == prev.operations():
            return
        prev = s


class Publisher:
    """bench/churn_publish.py in its own process, started `LEAD` seconds before its first
    message is due (so its start-up is not in the schedule); `report()` waits for its JSON."""

    def __init__(
        self, world: World, db: Database, messages: list[Message], rate: float, work: Path
    ) -> None:
        self.start = time.monotonic() + LEAD
        self.timeout = LEAD + len(messages) / rate + 300
        # From a file, not a pipe: the publisher reads it all before its first message is due,
        # with nothing in this process to feed it meanwhile.
        path = work / "churn-schedule.txt"
        path.write_text("\n".join(" ".join(m) for m in messages))
        with path.open() as schedule:
            self.proc = subprocess.Popen(
                [
                    sys.executable, "-m", "bench.churn_publish", world.mq.host,
                    str(world.mq.port), db.url, "--rate", str(rate), "--start", repr(self.start),
                ],
                stdin=schedule,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )  # fmt: skip

    def report(self) -> dict[str, Any]:
        out, err = self.proc.communicate(timeout=self.timeout)
        sys.stderr.write(err)
        if self.proc.returncode:
            raise RuntimeError(f"the churn publisher failed ({self.proc.returncode})")
        return dict(json.loads(out.strip().splitlines()[-1]))


def churn_run(
    world: World,
    db: Database,
    *,
    tag: str,
    mqtt: bool,
    seconds: float,
    rate: float,
    tick: float = TICK,
    timeout: float = 900,
) -> ChurnRun:
    initial = {k: db.ids(k) for k in KINDS}
    rows = {k: len(v) for k, v in initial.items()}
    messages = schedule(initial, int(seconds * rate), rate)
    del initial
    with world.slot(tag) as slot:
        slot.work.mkdir(parents=True, exist_ok=True)
        policy = write_policy(
            slot.work / "policy.yaml", slot.namespace, tick=tick, **{k: SIZING for k in KINDS}
        )
        started = time.monotonic()
        with daemon(world, slot, db.url, policy, mqtt=mqtt) as d:
            wait_converged(d, slot.zk_hosts, rows, mqtt, timeout)
            ready_s = time.monotonic() - started
            watcher = IdWatcher(slot.zk_hosts, kinds=KINDS)
            try:
                watcher.track(m[2] for m in messages)
                reads0, lags0, parse0 = watcher.reads, len(watcher.lags_ms), watcher.read_seconds
                before = d.scrape()
                publisher = Publisher(world, db, messages, rate, slot.work)
                start = publisher.start
                time.sleep(max(0.0, start - time.monotonic()))
                cpu0, own0 = cpu_seconds(d.pid), time.process_time()
                report = publisher.report()
                cpu1, own1, end = cpu_seconds(d.pid), time.process_time(), time.monotonic()
                records = [tuple(r) for r in report["records"]]
                deadline = time.monotonic() + SEEN_TIMEOUT
                while True:
                    with watcher.cond:
                        p = watcher.presence
                        seen = latencies(records, p.appeared, p.gone, p.count)
                    if seen.unseen == 0 or time.monotonic() > deadline:
                        break
                    time.sleep(0.5)  # each check holds the watcher's lock over every record
                rss = peak_rss_mib(d.pid)
                reads, lags = watcher.reads - reads0, watcher.lags_ms[lags0:]
                parse_s = watcher.read_seconds - parse0
            finally:
                watcher.close()
            stream_end = d.scrape()
            received = int(mqtt_events_received(stream_end) - mqtt_events_received(before))
            passes = int(stream_end.passes - before.passes)
            pass_ms = mean_pass_ms(before, stream_end) if passes else math.nan
            id_reads = stream_end.total(ID_READS) - before.total(ID_READS)
            converged_ms, writes = _converged_pass(d, slot.zk_hosts, tick, timeout)
            missing, duplicated, extra = _placement(db, slot.zk_hosts)
    window = end - start
    return ChurnRun(
        messages=len(records),
        publisher_rate=float(report["rate"]),
        publisher_late_s=float(report["late_s"]),
        c_ms=seen.c_ms,
        d_ms=seen.d_ms,
        unseen=seen.unseen,
        coalesced=seen.coalesced,
        received=received,
        window_s=window,
        cpu_pct=(cpu1 - cpu0) / window * 100,
        rss_mib=rss,
        ready_s=ready_s,
        converged_ms=converged_ms,
        zk_writes_per_pass=writes,
        missing=missing,
        duplicated=duplicated,
        extra=extra,
        watch_reads=reads,
        read_lags_ms=lags,
        watcher_parse_s=parse_s,
        bench_cpu_pct=(own1 - own0) / window * 100,
        window_passes=passes,
        window_pass_ms=pass_ms,
        db_id_reads=int(id_reads),
    )


def _converged_pass(d: BenchDaemon, hosts: str, tick: float, timeout: float) -> tuple[float, float]:
    """The first tick pass after the stream (it may still apply something), then the next
    tick's: (mean pass ms between, ZooKeeper writes per pass seen by another client)."""
    end = d.scrape()
    wait = 2 * tick + timeout

    def ticked(s: Scrape, after: Scrape) -> bool:
        return s.idle and s.ticks() >= after.ticks() + 1

    before = d.wait_scrape(lambda s: ticked(s, end), wait, "a tick pass", every=0.1)
    kazoo = connect(hosts)
    try:
        z0 = stamps(kazoo, KINDS)
        after = d.wait_scrape(lambda s: ticked(s, before), wait, "a tick pass", every=0.1)
        z1 = stamps(kazoo, KINDS)
    finally:
        kazoo.stop()
        kazoo.close()
    n = after.passes - before.passes
    return mean_pass_ms(before, after), writes_between(z0, z1) / n


def _placement(db: Database, hosts: str) -> tuple[int, int, int]:
    kazoo = connect(hosts)
    try:
        totals = [0, 0, 0]
        for kind in KINDS:
            found = placement(set(db.ids(kind)), resources(kazoo, kind).values())
            totals = [a + b for a, b in zip(totals, found, strict=True)]
        return totals[0], totals[1], totals[2]
    finally:
        kazoo.stop()
        kazoo.close()
