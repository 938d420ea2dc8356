"""Issue 28's scenarios in `python -m bench`: `churn` (bench/churn.py) and `failover`
(bench/ha.py), their table rows and the checks that print FAILED."""

from __future__ import annotations

import argparse
import math
import sys
import time

from bench.churn import BASE_TICK, SIZING, ChurnRun, churn_run
from bench.ha import HaRun, ha_run
from bench.report import Row, percentile
from bench.world import Database, World
from bench.zkfloor import FloorRun, floor_run

CHURN_BASE = f"MQTT off, tick {BASE_TICK:g} s"
FLOOR = "bare ZooKeeper writes"


def say(msg: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} bench: {msg}", file=sys.stderr, flush=True)


def churn(w: World, db: Database, args: argparse.Namespace) -> tuple[ChurnRun, ChurnRun | None]:
    runs: list[ChurnRun | None] = []
    for name, mqtt in (("ours", True), ("baseline", False)):
        if name == "baseline" and args.skip_baseline:
            runs.append(None)
            continue
        t0 = time.monotonic()
        run = churn_run(
            w,
            db,
            tag=f"churn-{name}",
            mqtt=mqtt,
            seconds=args.churn_seconds,
            rate=args.churn_rate,
            tick=args.churn_tick if mqtt else BASE_TICK,
        )
        runs.append(run)
        lags = run.read_lags_ms
        say(
            f"churn {name}: converged after {run.ready_s:.1f} s; {run.messages:,} messages at "
            f"{run.publisher_rate:,.1f} msg/s (worst {run.publisher_late_s:.3f} s late), "
            f"{run.unseen} unseen, {run.coalesced} coalesced, {run.received:,} received; "
            f"daemon CPU {run.cpu_pct:.1f} % "
            f"over {run.window_s:.1f} s; the bench {run.bench_cpu_pct:.1f} %, "
            f"{run.watch_reads:,} watch reads (parse {run.watcher_parse_s:.2f} s, lag p50 "
            f"{percentile(lags, 50):.1f} ms p99 {percentile(lags, 99):.1f} ms); the daemon ran "
            f"{run.window_passes} passes, {run.window_pass_ms:.1f} ms each, and read a table's "
            f"ids in full {run.db_id_reads} times; "
            f"{time.monotonic() - t0:.0f} s"
        )
    ours, base = runs
    assert ours is not None
    return ours, base


def zk_floor(w: World, db: Database, args: argparse.Namespace) -> FloorRun:
    t0 = time.monotonic()
    per = int(SIZING["resourcePerInstance"])
    run = floor_run(w, db, seconds=args.churn_seconds, rate=args.churn_rate, per_instance=per)
    say(
        f"churn floor: {run.messages:,} bare writes at {run.rate:,.1f}/s, {run.unseen} unseen, "
        f"server answers p50 {run.answer_p50_ms:.1f} ms p99 {run.answer_p99_ms:.1f} ms; "
        f"the bench {run.bench_cpu_pct:.1f} %; {time.monotonic() - t0:.0f} s"
    )
    return run


def floor_rows(run: FloorRun) -> list[Row]:
    both = run.c_ms + run.d_ms
    return [
        Row("churn floor: the same stream as bare ZooKeeper writes -> read, p50, ms",
            percentile(both, 50), None, "", FLOOR, None, 1),
        Row("churn floor: the same stream as bare ZooKeeper writes -> read, p99, ms",
            percentile(both, 99), None, "", FLOOR, None, 1),
        Row("  its writes: the server's answer, p50, ms", run.answer_p50_ms, None, "", FLOOR,
            None, 1),
        Row("  its writes: the server's answer, p99, ms", run.answer_p99_ms, None, "", FLOOR,
            None, 1),
        Row("  the writer's achieved rate, writes/s", run.rate, None, "", FLOOR, None, 1),
        Row("  changes never read in ZooKeeper", run.unseen, None, "0", FLOOR, None, 0),
    ]  # fmt: skip


def churn_rows(ours: ChurnRun, base: ChurnRun | None, things: int, rules: int) -> list[Row]:
    def lat(run: ChurnRun | None, p: float, which: str = "cd") -> float | None:
        if run is None:
            return None
        xs = (run.c_ms if "c" in which else []) + (run.d_ms if "d" in which else [])
        return percentile(xs, p)

    def b(attr: str) -> float | None:
        return None if base is None else float(getattr(base, attr))

    def run_passes(run: ChurnRun | None) -> float | None:
        return None if run is None else run.window_passes

    where = f"{things // 1000:,}k + {rules // 1000:,}k ids, {ours.messages:,} c/d"
    return [
        Row(f"churn: MQTT c/d -> change read in ZooKeeper, p50, {where}, ms", lat(ours, 50),
            lat(base, 50), "<= 10", CHURN_BASE, "churn_1m_p50_ms", 1),
        Row(f"churn: MQTT c/d -> change read in ZooKeeper, p99, {where}, ms", lat(ours, 99),
            lat(base, 99), "<= 50", CHURN_BASE, "churn_1m_p99_ms", 1),
        Row("  c only, p50, ms", lat(ours, 50, "c"), lat(base, 50, "c"), "", CHURN_BASE,
            None, 1),
        Row("  c only, p99, ms", lat(ours, 99, "c"), lat(base, 99, "c"), "", CHURN_BASE,
            None, 1),
        Row("  d only, p50, ms", lat(ours, 50, "d"), lat(base, 50, "d"), "", CHURN_BASE,
            None, 1),
        Row("  d only, p99, ms", lat(ours, 99, "d"), lat(base, 99, "d"), "", CHURN_BASE,
            None, 1),
        Row("  changes never read in ZooKeeper", ours.unseen, b("unseen"), "0", CHURN_BASE,
            None, 0),
        Row("  c and d of a row created and deleted before it was placed", ours.coalesced,
            b("coalesced"), "", CHURN_BASE, None, 0),
        Row("churn: the daemon's CPU over the stream, % of one core", ours.cpu_pct,
            b("cpu_pct"), "<= 50", CHURN_BASE, "churn_1m_cpu_pct", 1),
        Row("  the publisher's achieved rate (another process), msg/s", ours.publisher_rate,
            b("publisher_rate"), "", CHURN_BASE, None, 1),
        Row("  the bench's own CPU (watcher), % of one core", ours.bench_cpu_pct,
            b("bench_cpu_pct"), "", CHURN_BASE, None, 1),
        Row("  the watcher's lag (node mtime -> read), p99, ms", percentile(ours.read_lags_ms, 99),
            None if base is None else percentile(base.read_lags_ms, 99), "", CHURN_BASE, None, 1),
        Row("  the daemon's passes, stream start -> every change read", run_passes(ours),
            run_passes(base), "", CHURN_BASE, None, 0),
        Row("  their mean duration, ms", ours.window_pass_ms, b("window_pass_ms"), "",
            CHURN_BASE, None, 1),
        Row("  full reads of a table's ids over those passes", ours.db_id_reads,
            b("db_id_reads"), "", CHURN_BASE, None, 0),
        Row("churn: peak RSS (VmHWM) after the stream, MiB", ours.rss_mib, b("rss_mib"), "",
            CHURN_BASE, None, 1),
        Row("churn: converged pass after the stream, ms", ours.converged_ms,
            b("converged_ms"), "", CHURN_BASE, None, 1),
        Row("churn: ZooKeeper writes per converged pass after the stream",
            ours.zk_writes_per_pass, b("zk_writes_per_pass"), "0", CHURN_BASE, None, 2),
        Row("churn: ids missing + duplicated + extra at the end",
            ours.missing + ours.duplicated + ours.extra,
            None if base is None else base.missing + base.duplicated + base.extra, "0",
            CHURN_BASE, None, 0),
    ]  # fmt: skip


def churn_failures(ours: ChurnRun, base: ChurnRun | None) -> list[str]:
    out = []
    for name, run in (("churn", ours), ("churn baseline", base)):
        if run is None:
            continue
        if run.missing or run.duplicated or run.extra:
            out.append(
                f"FAILED {name}: {run.missing} ids missing, {run.duplicated} duplicated, "
                f"{run.extra} extra at the end"
            )
        if run.zk_writes_per_pass:
            out.append(f"FAILED {name}: {run.zk_writes_per_pass:g} writes per converged pass")
    return out


def ha(w: World, db: Database) -> HaRun:
    t0 = time.monotonic()
    run = ha_run(w, db, tag="ha")
    say(
        f"failover: both warm after {run.warm_s:.1f} s, standby VmRSS {run.standby_rss_mib:.1f}"
        f" MiB (VmHWM {run.standby_hwm_mib:.1f}), SIGKILL -> row read {run.failover_s:.2f} s,"
        f" SIGTERM -> row read {run.handoff_s:.2f} s; written by {run.failover_by} and"
        f" {run.handoff_by} ({time.monotonic() - t0:.0f} s)"
    )
    return run


def ha_failures(run: HaRun) -> list[str]:
    out = []
    for name, took, by in (
        ("SIGKILL", run.failover_s, run.failover_by),
        ("SIGTERM", run.handoff_s, run.handoff_by),
    ):
        if math.isnan(took) and by != "-":
            out.append(f"FAILED failover: after the {name}, the new row never showed up: {by}")
        elif math.isnan(took):
            out.append(f"FAILED failover: the {name} was not tried (the SIGKILL round failed)")
    return out


def ha_rows(run: HaRun, things: int, rules: int) -> list[Row]:
    where = f"{things // 1000:,}k + {rules // 1000:,}k ids"
    return [
        Row(f"SIGKILL of the leader -> a new row read in ZooKeeper, {where}, s",
            run.failover_s, None, f"<= {run.session_s + 2:g}", "", "failover_1m_s", 2),
        Row(f"SIGTERM of the leader -> a new row read in ZooKeeper, {where}, s",
            run.handoff_s, None, "<= 1.0", "", "handoff_1m_s", 2),
        Row(f"the warm standby's RSS (VmRSS) before the failover, {where}, MiB",
            run.standby_rss_mib, None, "<= 250", "", "standby_rss_1m_mb", 1),
        Row("  its peak RSS (VmHWM) then, MiB", run.standby_hwm_mib, None, "", "", None, 1),
    ]  # fmt: skip
