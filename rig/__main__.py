"""python -m rig provision [SERVER...]   install/build servers (all by default), cached
python -m rig run SERVER               run one server by hand until Ctrl-C
python -m rig versions                 print the version of each server the rig uses
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time

from rig import provision
from rig.errors import RigError

RUN_NAMES = {
    "zookeeper",
    "zk",
    "postgres",
    "pg",
    "mosquitto",
    "mqtt",
    "kafka",
    "kube",
    "prometheus",
}


def _run(name: str) -> None:
    from rig.kube import Kube
    from rig.servers import Kafka, Mosquitto, Postgres, Prometheus, Server, ZooKeeper

    classes: dict[str, type[Server]] = {
        "zookeeper": ZooKeeper,
        "zk": ZooKeeper,
        "postgres": Postgres,
        "pg": Postgres,
        "mosquitto": Mosquitto,
        "mqtt": Mosquitto,
        "kafka": Kafka,
        "kube": Kube,
        "prometheus": Prometheus,
    }
    server = classes[name]()
    t0 = time.monotonic()
    server.start()
    print(f"{server.name} ready in {time.monotonic() - t0:.1f}s; dir {server.dir}")
    for attr in ("hosts", "bootstrap", "url", "host", "port", "kubeconfig", "token"):
        if hasattr(server, attr):
            print(f"  {attr}: {getattr(server, attr)}")
    print("Ctrl-C stops it and removes its dir (RIG_KEEP=1 keeps it).", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not orphan it
        server.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m rig",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("provision", help="install or build servers (all by default)")
    p.add_argument(
        "servers", nargs="*", metavar="SERVER", help=f"any of: {' '.join(provision.SERVERS)}"
    )
    r = sub.add_parser("run", help="run one server in the foreground")
    r.add_argument("server", choices=sorted(RUN_NAMES))
    sub.add_parser("versions", help="print the versions the rig uses")
    args = parser.parse_args(argv)
    if args.cmd == "provision":
        unknown = set(args.servers) - set(provision.SERVERS)
        if unknown:
            parser.error(f"unknown server(s) {sorted(unknown)}; known: {provision.SERVERS}")
    try:
        if args.cmd == "provision":
            t0 = time.monotonic()
            provision.provision(args.servers or None)
            print(
                f"rig: provisioned in {time.monotonic() - t0:.1f}s; cache {provision.cache_dir()}"
            )
        elif args.cmd == "run":
            _run(args.server)
        else:
            for name, version in provision.versions().items():
                print(f"{name}: {version}")
    except RigError as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
