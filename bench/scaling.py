"""The README's scaling table: a converged pass at 10k, 100k and 1M ids, ours beside the
daemon with its caches off (RECONCILER_FULL_READ_SECONDS=0), in one run.

Each size is a separate `reconciler run` process on the rig (bench/passes.py): pass time
(mean of the measured ticks), peak RSS, ZooKeeper bytes read per pass (the daemon's
reconciler_zookeeper_read_bytes_total), full id reads per pass.

    .venv/bin/python -m bench.scaling [--sizes 5000,50000,500000]
"""

from __future__ import annotations

import argparse
import sys
import time

from bench.passes import BASELINE_ENV, PassRun, Sizing, pass_run
from bench.world import uuids, world


def _cell(run: PassRun | None, attr: str, fmt: str) -> str:
    return "-" if run is None else format(getattr(run, attr), fmt)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="5000,50000,500000", help="ids per kind (Thing, Rule)")
    ap.add_argument("--window", type=int, default=3, help="ticks measured once converged")
    args = ap.parse_args(argv)
    sizes = [int(x) for x in args.sizes.split(",")]
    rows: list[tuple[int, int, PassRun, PassRun]] = []
    with world() as w:
        for n in sizes:
            db = w.database(uuids(n), uuids(n))
            # 100 instances per kind at most; 1 to 100 as the size asks.
            per = min(5000, max(100, -(-n // 99)))  # resourcePerInstance is at most 5000
            sizing = Sizing(per, 100)
            runs = []
            for name, env in (("ours", None), ("caches off", BASELINE_ENV)):
                t0 = time.monotonic()
                run = pass_run(
                    w,
                    db,
                    {"Thing": n, "Rule": n},
                    sizing,
                    tag=f"scale-{n}-{'base' if env else 'ours'}",
                    window_ticks=args.window,
                    env=env,
                )
                print(
                    f"{time.strftime('%H:%M:%S')} scaling: {2 * n:,} ids {name}: "
                    f"{run.converged_ms:.1f} ms/pass ({time.monotonic() - t0:.0f} s)",
                    file=sys.stderr,
                    flush=True,
                )
                runs.append(run)
            db.close()
            rows.append((n, runs[0].instances, runs[0], runs[1]))
    print(
        "| ids (Thing + Rule) | instances | pass, ms | pass, ms (caches off) "
        "| peak RSS, MiB | peak RSS, MiB (caches off) | ZooKeeper bytes read per pass "
        "| same, caches off |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for n, instances, ours, base in rows:
        print(
            f"| {2 * n:,} | {instances} | {_cell(ours, 'converged_ms', ',.1f')} "
            f"| {_cell(base, 'converged_ms', ',.1f')} | {_cell(ours, 'rss_mib', ',.1f')} "
            f"| {_cell(base, 'rss_mib', ',.1f')} | {_cell(ours, 'zk_read_bytes_per_pass', ',.0f')} "
            f"| {_cell(base, 'zk_read_bytes_per_pass', ',.0f')} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
