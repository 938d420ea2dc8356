"""A row event's plan at any table size, in-process and without I/O: the pipeline of one pass
(reconciler/reconcile/pipeline.py) on the fakes of tests/support/fakes.py, so that what is
measured is the daemon's own work for one event, not the servers'.

    .venv/bin/python -m bench.event_path [--sizes 5000,50000,450000] [--events 150]

For each size (ids per kind, Thing and Rule, resourcePerInstance 5000): converge, then
`--events` times a single row created or deleted (half each, a random kind), its hint
checked and patched into the rows (reconcile/hints.py), and an event pass over that kind.
Prints the median and the largest time of the patch and of the pass, and the operations per
pass (a WriteInstance for the instance that took or lost the id).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterable
from pathlib import Path

from reconciler.domain.events import RowEvent
from reconciler.reconcile.hints import patch_rows_from_hints
from reconciler.telemetry.logs import ThrottledLog, configure, log
from tests.support.fakes import FakeRows
from tests.support.pass_world import World


class _IndexedRows(FakeRows):
    """FakeRows whose `present` looks the named ids up (the fake's own copies the table)."""

    def present(self, table: str, ids: Iterable[str]) -> frozenset[str]:
        held = self.tables[table]
        return frozenset(x for x in ids if x in held)


def measure(n: int, events: int, rng: random.Random) -> tuple[list[float], list[float], float]:
    kinds = {k: {"resourcePerInstance": 5000, "maxInstances": 100, "initInstances": 3}
             for k in ("Thing", "Rule")}  # fmt: skip
    world = World(Path(tempfile.mkdtemp()), **kinds)
    rows = _IndexedRows({k: {str(uuid.uuid4()) for _ in range(n)} for k in kinds})
    world.rows = world.ports.rows = rows  # type: ignore[misc]
    world.converge()
    forged, unverified = ThrottledLog(log, 10.0), ThrottledLog(log, 10.0)
    pools = {k: list(v) for k, v in rows.tables.items()}
    patches, passes, ops = [], [], []
    for k in range(events + 5):
        kind = rng.choice(sorted(kinds))
        if rng.random() < 0.5:
            rid = str(uuid.uuid4())
            rows.tables[kind].add(rid)
            pools[kind].append(rid)
            event = RowEvent(kind, frozenset([rid]), frozenset())
        else:
            pool = pools[kind]
            rid = pool.pop(rng.randrange(len(pool)))
            rows.tables[kind].discard(rid)
            event = RowEvent(kind, frozenset(), frozenset([rid]))
        t0 = time.perf_counter()
        changed = patch_rows_from_hints(rows, world.state, [event], forged, unverified)
        t1 = time.perf_counter()
        result = world.run(full=False, kinds=changed)
        t2 = time.perf_counter()
        if k >= 5:  # the first few warm the caches up
            patches.append((t1 - t0) * 1000)
            passes.append((t2 - t1) * 1000)
            ops.append(len(result.plan.ops))
    return patches, passes, statistics.mean(ops)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="5000,50000,450000", help="ids per kind")
    ap.add_argument("--events", type=int, default=150)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    configure("json", "warning")
    rng = random.Random(args.seed)
    print("| ids per kind | patch p50, ms | patch max, ms | pass p50, ms | pass max, ms | ops |")
    print("|---:|---:|---:|---:|---:|---:|")
    for n in (int(x) for x in args.sizes.split(",")):
        patches, passes, ops = measure(n, args.events, rng)
        print(
            f"| {n:,} | {statistics.median(patches):.2f} | {max(patches):.2f} "
            f"| {statistics.median(passes):.2f} | {max(passes):.2f} | {ops:.1f} |",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
