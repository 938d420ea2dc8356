"""Bench: row event -> ZooKeeper latency and create throughput, beside a tick-only daemon.

The daemon is wired as `reconciler run` wires it (reconciler.wiring.build) against the rig's
Mosquitto, PostgreSQL, ZooKeeper and apiserver+kwok. Latency is publish -> the transaction
holding the id committed (the daemon's post-apply assignment, polled every millisecond).
The baseline is the same daemon with MQTT switched off, converging by its tick alone.

    .venv/bin/python -m bench.events [--samples 200] [--burst 5000]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import paho.mqtt.client as mqtt_client
from paho.mqtt.enums import CallbackAPIVersion

from reconciler.adapters.sql.inventory import create_tables, insert_ids
from reconciler.wiring import App
from rig.kube import Kube
from rig.servers import Mosquitto, Postgres, ZooKeeper
from tests.support.daemon import running, settings_for
from tests.support.fleet import write_policy

TICK_ONLY_SECONDS = 5.0


@contextmanager
def running_daemon(
    zk: ZooKeeper, db: str, kube: Kube, mqtt: Mosquitto | None, tick: float
) -> Iterator[App]:
    """The daemon as `reconciler run` starts it (tests/support/daemon.py), on its own
    namespace, once its first pass is done."""
    with tempfile.TemporaryDirectory() as d:
        ns = f"bench-{uuid.uuid4().hex[:6]}"
        kube.create_namespace(ns)
        policy = write_policy(Path(d) / "policy.yaml", ns, tick=tick)
        settings = settings_for(zk.hosts, db, kube, policy, mqtt=mqtt.url if mqtt else "")
        with running(settings) as daemon:
            while daemon.app.daemon.state.world.assignment("Thing") is None:
                time.sleep(0.05)
            yield daemon.app


def assigned(app: App, rid: str) -> bool:
    return any(
        rid in inst.ids for inst in (app.daemon.state.world.assignment("Thing") or {}).values()
    )


def total(app: App) -> int:
    return sum(inst.used for inst in (app.daemon.state.world.assignment("Thing") or {}).values())


def wait(predicate, timeout: float = 120.0) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    while not predicate():
        if time.perf_counter() - start > timeout:
            raise TimeoutError("the daemon did not converge")
        time.sleep(0.001)
    return time.perf_counter() - start


def latencies(app: App, db: str, pub: mqtt_client.Client | None, samples: int) -> list[float]:
    out = []
    for _ in range(samples):
        rid = str(uuid.uuid4())
        insert_ids(db, "Thing", [rid])
        start = time.perf_counter()
        if pub is not None:
            pub.publish(
                "cm/notify", json.dumps({"o": "c", "t": "Thing", "k": {"id": rid}}), qos=1
            ).wait_for_publish(5)
        wait(lambda rid=rid: assigned(app, rid))
        out.append(time.perf_counter() - start)
    return out


def publish_from_another_process(mq: Mosquitto, lines: list[str]) -> None:
    subprocess.run(
        [sys.executable, "-m", "bench.publish", mq.host, str(mq.port)],
        input="\n".join(lines),
        text=True,
        check=True,
        timeout=300,
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=200)
    ap.add_argument("--baseline-samples", type=int, default=12)
    ap.add_argument("--burst", type=int, default=5000)
    args = ap.parse_args(argv)
    with ZooKeeper() as zk, Postgres() as pg, Mosquitto() as mq, Kube() as kube:
        db = pg.create_database("bench")
        create_tables(db)
        insert_ids(db, "Thing", (str(uuid.uuid4()) for _ in range(10_000)))
        insert_ids(db, "Rule", (str(uuid.uuid4()) for _ in range(100)))
        pub = mqtt_client.Client(CallbackAPIVersion.VERSION2, client_id="bench-publisher")
        pub.connect(mq.host, mq.port)
        pub.loop_start()

        with running_daemon(zk, db, kube, mq, tick=60) as app:
            lat = latencies(app, db, pub, args.samples)
            # Bulk: one bc message with `burst` keys.
            bulk = [str(uuid.uuid4()) for _ in range(args.burst)]
            insert_ids(db, "Thing", bulk)
            before, w0 = total(app), app.zk.session.writes
            start = time.perf_counter()
            pub.publish(
                "cm/notify",
                json.dumps({"o": "bc", "t": "Thing", "keys": [{"id": i} for i in bulk]}),
                qos=1,
            )
            wait(lambda: total(app) == before + args.burst)
            bulk_s, bulk_w = time.perf_counter() - start, app.zk.session.writes - w0
            # Singles: `burst` c messages back to back, from another process (a second paho
            # client in this process stalls the daemon's listener; see bench/publish.py).
            pub.loop_stop()
            pub.disconnect()
            singles = [str(uuid.uuid4()) for _ in range(args.burst)]
            insert_ids(db, "Thing", singles)
            before, w0 = total(app), app.zk.session.writes
            start = time.perf_counter()
            publish_from_another_process(
                mq, [json.dumps({"o": "c", "t": "Thing", "k": {"id": rid}}) for rid in singles]
            )
            wait(lambda: total(app) == before + args.burst)
            single_s, single_w = time.perf_counter() - start, app.zk.session.writes - w0

        with running_daemon(zk, db, kube, None, tick=TICK_ONLY_SECONDS) as app:
            base = latencies(app, db, None, args.baseline_samples)

    def q(xs: list[float], p: float) -> str:
        return f"{statistics.quantiles(xs, n=100)[int(p) - 1] * 1000:.1f} ms"

    print(
        f"\nRow event -> ZooKeeper ({args.samples} single creates; baseline: MQTT off, "
        f"tick {TICK_ONLY_SECONDS:g} s, {args.baseline_samples} creates)"
    )
    print(f"  {'':<34} {'reconciler':>14} {'tick only':>14}")
    print(f"  {'latency p50':<34} {q(lat, 50):>14} {q(base, 50):>14}")
    print(f"  {'latency p99':<34} {q(lat, 99):>14} {q(base, 99):>14}")
    print(f"\nBursts of {args.burst:,} creates (10 instances)")
    print(
        f"  {'one bc with all keys':<34} {args.burst / bulk_s:>10,.0f} ids/s "
        f"{bulk_s:.2f} s, {bulk_w} ZooKeeper transactions"
    )
    print(
        f"  {'single c messages':<34} {args.burst / single_s:>10,.0f} ids/s "
        f"{single_s:.2f} s, {single_w} ZooKeeper transactions"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
