"""A small stand-in for the iOTA platform around the daemon, for `make demo`.

It plays three parts the real platform plays (docs/contracts.md):

- the workers: every few seconds, one Kafka `HeartBeat` message per Running managed pod,
  value {"resource": "<kind>", "instanceId": "<id>", "timestamp": "<unix seconds>"};
- the database layer: now and then it inserts a few Things/Rules and publishes a `c` event per
  new row on MQTT `cm/notify` (and deletes one with a `d` event);
- bad luck: now and then one worker pod fails (kwok leaves it alone and its status is patched
  to Failed), which the daemon must notice and recreate.

Run by demo/run.py; by hand:
  export FLEET_SIMULATOR_DATABASE_URL=postgresql+psycopg://...
  python -m demo.fleet_simulator --kube-url URL --kube-token-file TOKEN_FILE --kube-ca CA \
      --kafka 127.0.0.1:9092 --mqtt mqtt://127.0.0.1:1883
SIGINT or SIGTERM stops it.

No secret on the command line, where `ps` and /proc/<pid>/cmdline show it to every user: the
apiserver token comes from a file only its owner may read (--kube-token-file, mode 0600) or
from $FLEET_SIMULATOR_KUBE_TOKEN, the database URL (which may carry a password) from
$FLEET_SIMULATOR_DATABASE_URL or --database-url.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import sys
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

HEARTBEAT_TOPIC = "HeartBeat"
NOTIFY_TOPIC = "cm/notify"
MANAGED = "app.kubernetes.io/managed-by=reconciler"
KIND_LABEL = "reconciler.iota/kind"
TOKEN_ENV = "FLEET_SIMULATOR_KUBE_TOKEN"
DATABASE_URL_ENV = "FLEET_SIMULATOR_DATABASE_URL"


def say(msg: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} fleet   | {msg}", flush=True)


class Simulator:
    def __init__(self, args: argparse.Namespace) -> None:
        from kafka import KafkaProducer
        from kubernetes import client

        self.args = args
        self.stop = threading.Event()
        self.rng = random.Random(args.seed)
        cfg = client.Configuration()
        cfg.host = args.kube_url
        cfg.ssl_ca_cert = args.kube_ca
        cfg.api_key = {"authorization": kube_token(args.kube_token_file)}
        cfg.api_key_prefix = {"authorization": "Bearer"}
        self.api = client.ApiClient(cfg)
        self.core = client.CoreV1Api(self.api)
        self.producer = KafkaProducer(
            bootstrap_servers=args.kafka,
            value_serializer=lambda v: json.dumps(v).encode(),
            linger_ms=20,
            acks=1,
        )
        self.mqtt = self._mqtt()
        self.sent: Counter[str] = Counter()
        self.inserted: Counter[str] = Counter()
        self.our_rows: dict[str, list[str]] = {"Thing": [], "Rule": []}

    def _mqtt(self) -> Any:
        import paho.mqtt.client as mqtt

        from reconciler.adapters.mqtt.connect import parse_broker_urls

        broker = parse_broker_urls(self.args.mqtt)[0]
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="demo-fleet-simulator")
        c.connect(broker.host, broker.port, keepalive=30)
        c.loop_start()
        return c

    # ------------------------------------------------------------------ the workers
    def running_pods(self) -> list[tuple[str, str, str]]:
        """(pod name, kind, instanceId) of every Running managed pod."""
        pods = self.core.list_namespaced_pod(self.args.namespace, label_selector=MANAGED)
        out = []
        for p in pods.items:
            labels = p.metadata.labels or {}
            if (
                p.status
                and p.status.phase == "Running"
                and not p.metadata.deletion_timestamp
                and KIND_LABEL in labels
                and "instanceId" in labels
            ):
                out.append((p.metadata.name, labels[KIND_LABEL], labels["instanceId"]))
        return out

    def heartbeats(self) -> None:
        now = str(int(time.time()))
        for _name, kind, iid in self.running_pods():
            self.producer.send(
                HEARTBEAT_TOPIC, {"resource": kind, "instanceId": iid, "timestamp": now}
            )
            self.sent[kind] += 1
        self.producer.flush(10)

    # ------------------------------------------------------------------ the database layer
    def new_rows(self) -> None:
        from reconciler.adapters.sql.inventory import delete_ids, insert_ids

        for table, n in (("Thing", self.args.insert_things), ("Rule", self.args.insert_rules)):
            if n <= 0:
                continue
            ids = [str(uuid.uuid4()) for _ in range(n)]
            insert_ids(self.args.database_url, table, ids)
            for rid in ids:  # after the commit, as the platform's database layer does
                self._notify({"o": "c", "t": table, "k": {"id": rid}, "instance": {"id": rid}})
            self.inserted[table] += n
            self.our_rows[table].extend(ids)
            say(f"inserted {n} {table} rows, published {n} 'c' events on {NOTIFY_TOPIC}")
        rows = self.our_rows["Thing"]
        if len(rows) > 1 and self.rng.random() < 0.5:
            gone = rows.pop(self.rng.randrange(len(rows)))
            delete_ids(self.args.database_url, "Thing", [gone])
            self._notify({"o": "d", "t": "Thing", "k": {"id": gone}})
            say(f"deleted Thing {gone[:8]}..., published a 'd' event")

    def _notify(self, doc: dict[str, Any]) -> None:
        self.mqtt.publish(NOTIFY_TOPIC, json.dumps(doc), qos=1)

    # ------------------------------------------------------------------ bad luck
    def fail_a_pod(self) -> None:
        running = self.running_pods()
        if not running:
            return
        name, kind, iid = self.rng.choice(running)
        ns = self.args.namespace
        # kwok would set it Running again: tell it to leave this pod alone, then fail it.
        self.core.patch_namespaced_pod(
            name, ns, {"metadata": {"annotations": {"kwok.x-k8s.io/status": "custom"}}}
        )
        self.core.patch_namespaced_pod_status(
            name,
            ns,
            {
                "status": {
                    "phase": "Failed",
                    "reason": "DemoChaos",
                    "message": "failed on purpose by the fleet simulator",
                }
            },
        )
        say(f"pod {name} ({kind} instance {iid}) set to Failed: the daemon should recreate it")

    # ------------------------------------------------------------------ loop
    def run(self) -> None:
        a = self.args
        say(
            f"sending heartbeats every {a.heartbeat_every:g}s, inserting rows every "
            f"{a.insert_every:g}s"
            + (f", failing a pod every {a.fail_every:g}s" if a.fail_every > 0 else "")
        )
        start = time.monotonic()
        next_insert = start + a.insert_every
        next_fail = start + a.fail_every if a.fail_every > 0 else float("inf")
        next_report = start + a.report_every
        while not self.stop.is_set():
            now = time.monotonic()
            for what, fn in (("heartbeats", self.heartbeats),):
                self._guard(what, fn)
            if now >= next_insert:
                self._guard("insert rows", self.new_rows)
                next_insert = now + a.insert_every
            if now >= next_fail:
                self._guard("fail a pod", self.fail_a_pod)
                next_fail = now + a.fail_every
            if now >= next_report:
                sent = ", ".join(f"{k} {v}" for k, v in sorted(self.sent.items())) or "none"
                say(f"heartbeats sent so far: {sent}")
                next_report = now + a.report_every
            self.stop.wait(a.heartbeat_every)

    def _guard(self, what: str, fn: Any) -> None:
        try:
            fn()
        except Exception as e:  # a server hiccup must not end the demo
            say(f"{what} failed: {type(e).__name__}: {e}")

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.producer.close(5)
        with contextlib.suppress(Exception):
            self.mqtt.loop_stop()
            self.mqtt.disconnect()
        with contextlib.suppress(Exception):
            self.api.close()


def kube_token(path: Path | None) -> str:
    """The apiserver token: from `path`, which only its owner may read, else from
    $FLEET_SIMULATOR_KUBE_TOKEN."""
    if path is not None:
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            raise SystemExit(
                f"fleet simulator: {path} is readable by others (mode {mode:o}): chmod 600 it"
            )
        token = path.read_text().strip()
    else:
        token = os.environ.get(TOKEN_ENV, "").strip()
    if not token:
        raise SystemExit(
            f"fleet simulator: no apiserver token: give --kube-token-file FILE or set {TOKEN_ENV}"
        )
    return token


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--kube-url", required=True)
    p.add_argument(
        "--kube-token-file",
        type=Path,
        default=None,
        help=f"file holding the apiserver token, mode 0600 (default: ${TOKEN_ENV})",
    )
    p.add_argument("--kube-ca", required=True)
    p.add_argument("--kafka", required=True, help="bootstrap host:port")
    p.add_argument("--mqtt", required=True, help="mqtt://host:port")
    p.add_argument(
        "--database-url",
        default=os.environ.get(DATABASE_URL_ENV),
        help=f"SQLAlchemy URL of the platform's database (default: ${DATABASE_URL_ENV})",
    )
    p.add_argument("--namespace", default="iota")
    p.add_argument("--heartbeat-every", type=float, default=5.0)
    p.add_argument("--insert-every", type=float, default=20.0)
    p.add_argument("--insert-things", type=int, default=25)
    p.add_argument("--insert-rules", type=int, default=5)
    p.add_argument("--fail-every", type=float, default=60.0, help="0: never fail a pod")
    p.add_argument("--report-every", type=float, default=30.0)
    p.add_argument("--seed", type=int, default=None)
    args = p.parse_args(argv)
    if not args.database_url:
        p.error(f"no database: give --database-url or set {DATABASE_URL_ENV}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sim = Simulator(args)
    signal.signal(signal.SIGTERM, lambda *_: sim.stop.set())
    signal.signal(signal.SIGINT, lambda *_: sim.stop.set())
    try:
        sim.run()
    finally:
        sim.close()
        say("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
