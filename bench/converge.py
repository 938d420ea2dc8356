"""Bench: a converged tick at 100k Things + 100k Rules, and ids moved on a sizing change.

Runs against the rig's real ZooKeeper, PostgreSQL and kube-apiserver+kwok and prints each
figure beside the baseline (the old full re-orchestration, bench/baseline.py) in one run.

    .venv/bin/python -m bench.converge [--things 100000] [--rules 100000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

from bench.baseline import full_reorchestration, moved
from reconciler.adapters.sql.inventory import create_tables, insert_ids
from reconciler.domain.model import KindIntent, KindObserved, applied
from reconciler.policy.schema import KindPolicy
from reconciler.reconcile.planner import plan_kind
from rig.kube import Kube
from rig.servers import Postgres, ZooKeeper
from tests.support.fleet import fleet, write_policy


def _row(name: str, ours: str, base: str) -> None:
    print(f"  {name:<44} {ours:>16} {base:>16}")


def converged_tick(things: int, rules: int, repeat: int) -> None:
    with ZooKeeper() as zk, Postgres() as pg, Kube() as kube, tempfile.TemporaryDirectory() as d:
        db = pg.create_database("bench")
        create_tables(db)
        insert_ids(db, "Thing", (str(uuid.uuid4()) for _ in range(things)))
        insert_ids(db, "Rule", (str(uuid.uuid4()) for _ in range(rules)))
        kube.create_namespace("bench")
        policy = write_policy(Path(d) / "policy.yaml", "bench", Rule={"resourcePerInstance": 2000})
        with fleet(zk.hosts, db, kube.api_client(), policy) as f:
            t0 = time.perf_counter()
            f.tick()
            cold = time.perf_counter() - t0
            w0 = f.writes()
            walls = []
            for _ in range(repeat):
                t0 = time.perf_counter()
                f.tick()
                walls.append(time.perf_counter() - t0)
            zk_w, kube_w = (a - b for a, b in zip(f.writes(), w0, strict=True))
            loaded = f.loaded()
            # Baseline: every pass re-orchestrates from scratch and writes every instance.
            base_walls, base_writes = [], 0
            for _ in range(repeat):
                t0 = time.perf_counter()
                for kind, p in loaded.policy.kinds.items():
                    rows = f.inventory.ids(p.table)
                    previous = f.zk.read(kind)
                    for inst in full_reorchestration(rows, p, previous).values():
                        f.zk.write_instance(kind, inst, create=inst.instance_id not in previous)
                        base_writes += 1
                base_walls.append(time.perf_counter() - t0)
        print(
            f"\nConverged tick, {things:,} Things + {rules:,} Rules "
            f"(real ZooKeeper, PostgreSQL, apiserver; median of {repeat})"
        )
        _row("", "reconciler", "old full re-orch")
        _row("first pass (empty world), s", f"{cold:.2f}", "-")
        _row(
            "converged pass wall time, s",
            f"{statistics.median(walls):.3f}",
            f"{statistics.median(base_walls):.3f}",
        )
        _row(
            "ZooKeeper writes per converged pass", f"{zk_w / repeat:g}", f"{base_writes / repeat:g}"
        )
        _row("Kubernetes writes per converged pass", f"{kube_w / repeat:g}", "0 (no pod check)")


def moves_on_resize(n: int) -> None:
    ids = frozenset(str(uuid.uuid4()) for _ in range(n))
    print(f"\nIds moved when resourcePerInstance changes ({n:,} Things, pure planner)")
    _row("change (instances before -> after)", "reconciler", "old full re-orch")
    for before, after in [(5000, 4000), (5000, 2500), (2500, 5000), (5000, 4999)]:
        p0 = KindPolicy(
            table="Thing", instance_name="iota-dac", template="t", resource_per_instance=before
        )
        p1 = p0.model_copy(update={"resource_per_instance": after})
        start = applied({}, plan_kind(p0, KindObserved("Thing", ids, {}, {}), 0)[0])
        # A policy edit: the daemon re-sizes in full (held layouts grow only by the seed's rule).
        resize = KindIntent(resize=True)
        ops, report = plan_kind(p1, KindObserved("Thing", ids, start, {}), 0, resize)
        ours = applied(start, ops)
        base0 = full_reorchestration(ids, p0)
        base1 = full_reorchestration(ids, p1)
        minimum = sum(len(inst.ids) for i, inst in ours.items() if i not in start) + sum(
            len(inst.ids) for i, inst in start.items() if i not in ours
        )
        label = f"{before}->{after} ({len(start)}->{len(ours)}), min {minimum:,}"
        _row(label, f"{report.moved:,}", f"{moved(base0, base1):,}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--things", type=int, default=100_000)
    ap.add_argument("--rules", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args(argv)
    moves_on_resize(args.things)
    converged_tick(args.things, args.rules, args.repeat)
    return 0


if __name__ == "__main__":
    sys.exit(main())
