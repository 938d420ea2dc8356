"""`python -m tests.chaos --seed N --minutes M`: start the rig's servers, a fleet and a real
daemon, mix random faults and row churn for M minutes, and end with one line
`violations=<n> faults=<n> kills=<n> worst_convergence_s=<x>` (exit status 1 on a violation).
Every server it started is stopped on the way out, Ctrl-C included.
"""

from __future__ import annotations

import argparse
import logging
import random
import signal
import sys
import tempfile
from pathlib import Path
from types import FrameType

from rig.kube import Kube
from rig.servers import Kafka, Mosquitto, Postgres, Server, ZooKeeper
from tests.chaos.links import ProxiedKafka
from tests.chaos.run import chaos
from tests.chaos.timefaults import ALL_FAULTS as FAULTS
from tests.chaos.world import Servers, World


def _args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.chaos", description=__doc__)
    parser.add_argument("--seed", type=int, required=True, help="picks faults and kill points")
    parser.add_argument("--minutes", type=float, required=True, help="how long to inject faults")
    parser.add_argument("--faults", default="", help=f"comma-separated subset of {sorted(FAULTS)}")
    return parser.parse_args(argv)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    names = [n for n in args.faults.split(",") if n]
    unknown = set(names) - set(FAULTS)
    if unknown:
        raise SystemExit(f"unknown faults {sorted(unknown)}; known: {sorted(FAULTS)}")
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("kafka").setLevel(logging.CRITICAL)
    logging.getLogger("kazoo").setLevel(logging.CRITICAL)
    logging.getLogger("urllib3").setLevel(logging.ERROR)  # retries while the apiserver is paused
    signal.signal(signal.SIGTERM, _interrupt)
    rng = random.Random(args.seed)
    # Kafka with a listener the daemon reaches through a fault proxy (links.py).
    servers: list[Server] = [ZooKeeper(), Postgres(), Mosquitto(), ProxiedKafka(), Kube()]
    world: World | None = None
    try:
        for server in servers:  # from this thread: the rig's processes die with their parent's
            server.start()  # thread (PR_SET_PDEATHSIG), so no thread pool here
        zk, pg, mqtt, kafka, kube = servers
        assert isinstance(zk, ZooKeeper) and isinstance(pg, Postgres)
        assert isinstance(mqtt, Mosquitto) and isinstance(kafka, Kafka)
        assert isinstance(kube, Kube)
        work = Path(tempfile.mkdtemp(prefix="reconciler-chaos-"))
        print(f"seed={args.seed} minutes={args.minutes} work={work}", flush=True)
        world = World(Servers(zk, pg, mqtt, kafka, kube), work, rng).start()
        summary = chaos(world, rng, args.minutes, names, say=lambda line: print(line, flush=True))
    except KeyboardInterrupt:
        print("interrupted: servers stopped", file=sys.stderr)
        return 130
    finally:
        if world is not None:
            world.close()
        for server in servers:
            server.close()
    print(summary.last_line(), flush=True)
    return 1 if summary.violations else 0


if __name__ == "__main__":
    sys.exit(main())
