"""The churn's floor: the same kind of stream as bench/churn.py's, at the same rate and sizes,
played as bare ZooKeeper writes with no daemon (bench/zkfloor_write.py, a process of its
own), read by the same watcher and measured the same way. What the churn's latency would be
if everything the daemon does cost nothing but the one `resources` write each message needs
(docs/contracts.md: an instance's ids are one node, ~195 KB for 5,000 uuids).

The layout: each kind's rows (the scenario database's, as they are) in sorted runs of
`per_instance`, on a fresh chroot. The schedule: `bench.churn.schedule` over those ids.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.churn import KINDS, LEAD, SEEN_TIMEOUT, latencies, schedule
from bench.world import Database, World
from bench.zkview import ROOT, IdWatcher, connect


@dataclass(frozen=True)
class FloorRun:
    messages: int
    rate: float  # achieved by the writer
    c_ms: list[float]
    d_ms: list[float]
    unseen: int
    answer_p50_ms: float  # the server's answer to a write, as the writer timed it
    answer_p99_ms: float
    bench_cpu_pct: float  # the watcher's process, % of one core


def floor_run(
    world: World, db: Database, *, seconds: float, rate: float, per_instance: int
) -> FloorRun:
    initial = {k: sorted(db.ids(k)) for k in KINDS}
    messages = schedule(initial, int(seconds * rate), rate)
    with world.slot("zkfloor") as slot:
        slot.work.mkdir(parents=True, exist_ok=True)
        _layout(slot.zk_hosts, initial, per_instance)
        del initial
        watcher = IdWatcher(slot.zk_hosts, kinds=KINDS)
        try:
            watcher.track(m[2] for m in messages)
            path = slot.work / "zkfloor-schedule.txt"
            path.write_text("\n".join(" ".join(m) for m in messages))
            start = time.monotonic() + LEAD
            own0 = time.process_time()
            report = _write(slot.zk_hosts, path, rate, start, per_instance, seconds)
            own1, end = time.process_time(), time.monotonic()
            records = [tuple(r) for r in report["records"]]
            deadline = time.monotonic() + SEEN_TIMEOUT
            while True:
                with watcher.cond:
                    p = watcher.presence
                    seen = latencies(records, p.appeared, p.gone, p.count)  # type: ignore[arg-type]
                if seen.unseen == 0 or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
        finally:
            watcher.close()
    return FloorRun(
        messages=len(records),
        rate=float(report["rate"]),
        c_ms=seen.c_ms,
        d_ms=seen.d_ms,
        unseen=seen.unseen,
        answer_p50_ms=float(report["answer_p50_ms"]),
        answer_p99_ms=float(report["answer_p99_ms"]),
        bench_cpu_pct=(own1 - own0) / (end - start) * 100,
    )


def _layout(hosts: str, rows: dict[str, list[str]], per: int) -> None:
    """`<root>/<kind>/<i>/resources` for each run of `per` ids (what the watcher reads)."""
    kazoo = connect(hosts)
    try:
        pending = []
        for kind, ids in rows.items():
            for n, i in enumerate(range(0, len(ids), per)):
                data = json.dumps({"ids": ids[i : i + per]}).encode()
                kazoo.ensure_path(f"{ROOT}/{kind}/{n}")
                pending.append(kazoo.create_async(f"{ROOT}/{kind}/{n}/resources", data))
        for p in pending:
            p.get(timeout=60)
    finally:
        kazoo.stop()
        kazoo.close()


def _write(
    hosts: str, schedule_file: Path, rate: float, start: float, per: int, seconds: float
) -> dict[str, Any]:
    with schedule_file.open() as stdin:
        proc = subprocess.run(
            [
                sys.executable, "-m", "bench.zkfloor_write", hosts, "--rate", str(rate),
                "--start", repr(start), "--per-instance", str(per),
            ],
            stdin=stdin, capture_output=True, text=True, timeout=LEAD + seconds + 300,
        )  # fmt: skip
    sys.stderr.write(proc.stderr)
    if proc.returncode:
        raise RuntimeError(f"the ZooKeeper floor writer failed ({proc.returncode})")
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))
