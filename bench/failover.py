"""Bench: leader failover after SIGKILL and after SIGTERM, beside the ZooKeeper session timeout.

Two `reconciler run` processes (leader + warm standby) on the rig's ZooKeeper, PostgreSQL and
kube-apiserver+kwok. Each round commits a row (the 30 s tick is far off: it stays
pending), signals the leader, and times until that row is in ZooKeeper (read by a separate
kazoo client): the standby must win the election and apply the pending change. A fresh
standby replaces the old leader before the next round.

    .venv/bin/python -m bench.failover [--rounds 5] [--session-timeout 10]
"""

from __future__ import annotations

import argparse
import signal
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

from kazoo.client import KazooClient

from reconciler.adapters.sql.inventory import insert_ids
from rig.kube import Kube
from rig.servers import Postgres, ZooKeeper
from tests.support.fleet import read_layout, seed, write_policy
from tests.support.processes import DaemonProcess, wait_for_leader


def _instances(kazoo: KazooClient) -> dict[int, dict[str, object]]:
    try:
        return read_layout(kazoo, "Thing")
    except Exception:  # not written yet, or a node deleted while we read
        return {}


def _has(kazoo: KazooClient, row: str) -> bool:
    return any(row in inst["ids"] for inst in _instances(kazoo).values())  # type: ignore[operator]


def failover(sig: int, rounds: int, session: float) -> list[float]:
    took: list[float] = []
    with ZooKeeper() as zk, Postgres() as pg, Kube() as kube, tempfile.TemporaryDirectory() as d:
        db = pg.create_database("bench")
        seed(db, things=2000, rules=100)
        kube.create_namespace("bench")
        policy = write_policy(Path(d) / "policy.yaml", "bench", tick=30)
        kazoo = KazooClient(hosts=zk.hosts, timeout=10)
        kazoo.start(timeout=15)
        names = iter(range(1000))

        def start() -> DaemonProcess:
            return DaemonProcess(
                Path(d), zk.hosts, db, kube, policy, f"d{next(names)}", session_timeout=session
            )

        daemons = [start(), start()]
        try:
            for _ in range(rounds):
                leader = wait_for_leader(daemons, timeout=120)
                deadline = time.monotonic() + 120
                while not _instances(kazoo) and time.monotonic() < deadline:
                    time.sleep(0.1)
                time.sleep(1.0)  # both warm: the standby has run a pass
                # The pending change is committed first (the tick is 30 s: the old leader does
                # not apply it), then the leader is signalled: the clock starts there.
                row = str(uuid.uuid4())
                insert_ids(db, "Thing", [row])
                leader.signal(sig)
                t0 = time.monotonic()
                while not _has(kazoo, row):
                    if time.monotonic() - t0 > session + 30:
                        raise SystemExit("no failover within session timeout + 30 s")
                    time.sleep(0.01)
                took.append(time.monotonic() - t0)
                leader.close()
                daemons = [x for x in daemons if x is not leader] + [start()]
        finally:
            for x in daemons:
                x.close()
            kazoo.stop()
            kazoo.close()
    return took


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--session-timeout", type=float, default=10.0)
    args = ap.parse_args(argv)
    kill = failover(signal.SIGKILL, args.rounds, args.session_timeout)
    term = failover(signal.SIGTERM, args.rounds, args.session_timeout)
    print(f"failover, median of {args.rounds} (a pending row applied by the new leader)")
    print(f"  {'case':<34} {'median':>8} {'max':>8}   {'session timeout':>15}")
    for name, xs in (("SIGKILL of the leader", kill), ("SIGTERM of the leader", term)):
        print(
            f"  {name:<34} {statistics.median(xs):>7.2f}s {max(xs):>7.2f}s"
            f"   {args.session_timeout:>14g}s"
        )
    kill_s, term_s = statistics.median(kill), statistics.median(term)
    print(
        f"failover_kill_s={kill_s:.2f} failover_term_s={term_s:.2f}"
        f" session_timeout_s={args.session_timeout:g}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
