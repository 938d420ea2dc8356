"""No secret leaks, end to end (issue 13, SECURITY.md "Secrets").

Real `reconciler run` processes on the rig, with every credential switched on and known:
a PostgreSQL role that must give its password, Mosquitto with a password file, Kafka with a
SASL login, ZooKeeper with the daemon's digest login (its password from a file, the readers
restricted to a worker) and a REST token; the apiserver's bearer token too. A first daemon
with the right secrets works (rows, row events, heartbeats' source, REST with the token);
a second one gets every password wrong and runs its passes blind; the CLI fails on purpose
(`plan` with a wrong database and ZooKeeper password, `status` with a wrong token, settings
errors around a password). Every secret string, right or wrong, is then looked for in both
daemons' debug logs, their `/v1/status`, `/metrics` and REST answers, and every CLI output:
found nowhere.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import pytest
from kafka import KafkaProducer
from kazoo.security import make_digest_acl_credential

from reconciler.adapters.sql.inventory import insert_ids
from rig.servers import Kafka, Mosquitto, Postgres
from tests.support.fleet import daemon_env, eventually, seed, uuids, write_policy
from tests.support.processes import RECONCILER, DaemonProcess
from tests.support.serving import serve


def secret(what: str) -> str:
    return f"{what}-{uuid.uuid4().hex}"


DB_PW, DB_WRONG = secret("db"), secret("db-wrong")
MQTT_PW, MQTT_WRONG = secret("mqtt"), secret("mqtt-wrong")
KAFKA_PW, KAFKA_WRONG = secret("kafka"), secret("kafka-wrong")
ZK_PW, ZK_WRONG = secret("zk"), secret("zk-wrong")
TOKEN, TOKEN_WRONG = secret("token"), secret("token-wrong")
PUBLISHER_PW, WORKER_PW = secret("publisher"), secret("worker")
KNOWN = {
    "database password": DB_PW,
    "wrong database password": DB_WRONG,
    "MQTT password": MQTT_PW,
    "wrong MQTT password": MQTT_WRONG,
    "Kafka password": KAFKA_PW,
    "wrong Kafka password": KAFKA_WRONG,
    "ZooKeeper password": ZK_PW,
    "wrong ZooKeeper password": ZK_WRONG,
    "REST token": TOKEN,
    "wrong REST token": TOKEN_WRONG,
}


@pytest.fixture(scope="module")
def secure_mqtt() -> Iterator[Mosquitto]:
    yield from serve(Mosquitto(users={"reconciler": MQTT_PW, "db-layer": PUBLISHER_PW}))


@pytest.fixture(scope="module")
def sasl_kafka() -> Iterator[Kafka]:
    yield from serve(Kafka(sasl_users={"reconciler": KAFKA_PW, "worker": WORKER_PW}))


class Evidence:
    """Everything the daemons and the CLI showed anyone: searched for the secrets at the end."""

    def __init__(self) -> None:
        self.texts: dict[str, str] = {}

    def add(self, where: str, text: str) -> str:
        self.texts[where] = self.texts.get(where, "") + text
        return text

    def http(self, where: str, response: httpx.Response) -> httpx.Response:
        self.add(where, f"{response.status_code} {dict(response.headers)} {response.text}")
        return response

    def cli(
        self, where: str, args: list[str], env: dict[str, str], cwd: Path
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [RECONCILER, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120
        )
        self.add(where, result.stdout + result.stderr)
        return result

    def leaks(self) -> list[tuple[str, str]]:
        return [
            (where, name)
            for where, text in self.texts.items()
            for name, value in KNOWN.items()
            if value in text
        ]


def publish(server: Mosquitto, payload: str) -> None:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"db-{uuid.uuid4().hex[:6]}")
    client.username_pw_set("db-layer", PUBLISHER_PW)
    connected = threading.Event()
    client.on_connect = lambda *_: connected.set()
    client.connect("127.0.0.1", server.port, keepalive=5)
    client.loop_start()
    try:
        assert connected.wait(5)
        client.publish("cm/notify", payload, qos=1).wait_for_publish(timeout=5)
    finally:
        client.disconnect()
        client.loop_stop()


def source_up(http: httpx.Client, source: str) -> float | None:
    for line in http.get("/metrics").text.splitlines():
        if line.startswith(f'reconciler_source_up{{source="{source}"}}'):
            return float(line.split()[-1])
    return None


def passes(http: httpx.Client) -> float:
    """Passes the daemon has run (reconciler_reconciles_total, every trigger)."""
    return sum(
        float(line.split()[-1])
        for line in http.get("/metrics").text.splitlines()
        if line.startswith("reconciler_reconciles_total{")
    )


def credentials(
    tmp_path: Path, mqtt_server: Mosquitto, kafka: Kafka, *, db_url: str, wrong: bool
) -> dict[str, str]:
    """The daemon's secrets as an operator sets them (the ZooKeeper password from a file)."""
    zk_pw = tmp_path / f"zk-password-{'wrong' if wrong else 'right'}"
    zk_pw.write_text((ZK_WRONG if wrong else ZK_PW) + "\n")
    return {
        "RECONCILER_DATABASE_URL": db_url,
        "RECONCILER_MQTT_BROKERS": mqtt_server.url,
        "RECONCILER_MQTT_USERNAME": "reconciler",
        "RECONCILER_MQTT_PASSWORD": MQTT_WRONG if wrong else MQTT_PW,
        "RECONCILER_MQTT_RECONNECT_SECONDS": "1",
        "RECONCILER_KAFKA_BOOTSTRAP": kafka.bootstrap,
        "RECONCILER_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "RECONCILER_KAFKA_SASL_MECHANISM": "PLAIN",
        "RECONCILER_KAFKA_SASL_USERNAME": "reconciler",
        "RECONCILER_KAFKA_SASL_PASSWORD": KAFKA_WRONG if wrong else KAFKA_PW,
        "RECONCILER_ZK_USERNAME": "reconciler",
        "RECONCILER_ZK_PASSWORD_FILE": str(zk_pw),
        "RECONCILER_ZK_READERS": f"digest:{make_digest_acl_credential('worker', WORKER_PW)}",
        "RECONCILER_API_TOKEN": TOKEN,
        "RECONCILER_LOG_LEVEL": "debug",
    }


def test_no_secret_shows_in_logs_status_rest_or_cli_output(
    tmp_path: Path,
    zk_hosts: str,
    pg: Postgres,
    pg_url: str,
    kube: Any,
    kube_namespace: str,
    secure_mqtt: Mosquitto,
    sasl_kafka: Kafka,
) -> None:
    KNOWN["apiserver token"] = kube.token  # in the daemons' environment as well
    try:
        run_everything(
            tmp_path, zk_hosts, pg, pg_url, kube, kube_namespace, secure_mqtt, sasl_kafka
        )
    finally:
        del KNOWN["apiserver token"]


def run_everything(
    tmp_path: Path,
    zk_hosts: str,
    pg: Postgres,
    pg_url: str,
    kube: Any,
    kube_namespace: str,
    secure_mqtt: Mosquitto,
    sasl_kafka: Kafka,
) -> None:
    seed(pg_url, things=30, rules=5)
    role = f"leaky_{uuid.uuid4().hex[:8]}"
    db_url = pg.create_password_role(role, DB_PW, pg_url.rsplit("/", 1)[1])
    wrong_db_url = db_url.replace(DB_PW, DB_WRONG)
    policy = write_policy(
        tmp_path / "policy.yaml",
        kube_namespace,
        tick=1,
        Thing={"initInstances": 2, "heartbeat": {"enabled": True}},
        Rule={"initInstances": 1},
    )
    # The topic exists before the daemon subscribes (the workers create it in production).
    producer = KafkaProducer(
        bootstrap_servers=sasl_kafka.bootstrap, **sasl_kafka.client_options("worker")
    )
    producer.send("HeartBeat", b'{"resource": "Thing", "instanceId": "0"}').get(timeout=30)
    evidence = Evidence()
    right = credentials(tmp_path, secure_mqtt, sasl_kafka, db_url=db_url, wrong=False)
    wrong = credentials(tmp_path, secure_mqtt, sasl_kafka, db_url=wrong_db_url, wrong=True)

    # -- every secret right: the daemon works through every login ------------------------
    good = DaemonProcess(tmp_path, zk_hosts, db_url, kube, policy, "good", env=right)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{good.port}", timeout=30) as http:
            eventually(
                lambda: (good.status() or {}).get("leadership", {}).get("role") == "leader",
                timeout=60,
                what="the good daemon leads",
            )
            eventually(
                lambda: source_up(http, "mqtt") == 1 and source_up(http, "kafka") == 1,
                timeout=90,
                what="MQTT and Kafka logged in",
            )
            rid = uuids(1)[0]
            insert_ids(pg_url, "Thing", [rid])
            publish(secure_mqtt, json.dumps({"o": "c", "t": "Thing", "k": {"id": rid}}))

            def served() -> bool:
                kinds = http.get("/v1/status").json()["kinds"]
                return (
                    rid in json.dumps(http.get("/v1/api/orchestrations/Thing").json())
                    and kinds["Thing"]["rows"] == 31
                )

            eventually(served, timeout=30, what="the new row served")
            evidence.http("good /v1/status", http.get("/v1/status"))
            evidence.http("good /metrics", http.get("/metrics"))
            evidence.http("good GET orchestration", http.get("/v1/api/orchestrations/Thing"))
            post = "/v1/api/orchestrations/Thing/orchestrate"
            assert (
                evidence.http(
                    "good POST token", http.post(post, headers={"Authorization": f"Bearer {TOKEN}"})
                ).status_code
                == 200
            )
            assert evidence.http("good POST no token", http.post(post)).status_code == 401
            assert (
                evidence.http(
                    "good POST wrong token",
                    http.post(post, headers={"Authorization": f"Bearer {TOKEN_WRONG}"}),
                ).status_code
                == 401
            )

            base = daemon_env(tmp_path, zk_hosts, db_url, kube)
            url = f"http://127.0.0.1:{good.port}"
            cli_env = {**base, **right, "RECONCILER_POLICY_PATH": str(policy)}
            ok = evidence.cli("status", ["status", "--url", url], cli_env, tmp_path)
            assert ok.returncode == 0 and "Thing:" in ok.stdout, ok.stderr
            # GETs are open; a POST with the wrong token is refused, and says so
            refused = evidence.cli(
                "confirm wrong token",
                ["confirm", "Thing", "--url", url, "--token", TOKEN_WRONG],
                cli_env,
                tmp_path,
            )
            assert refused.returncode == 2 and "HTTP 401" in refused.stderr, refused.stderr
            gone = evidence.cli(
                "status no daemon", ["status", "--url", "http://127.0.0.1:1"], cli_env, tmp_path
            )
            assert gone.returncode == 3, gone.stderr
            planned = evidence.cli("plan", ["plan"], cli_env, tmp_path)
            assert planned.returncode == 0, planned.stderr
            blind = evidence.cli(
                "plan wrong passwords",
                ["plan"],
                {**base, **wrong, "RECONCILER_POLICY_PATH": str(policy)},
                tmp_path,
            )
            assert blind.returncode == 3
            assert "database unreadable" in blind.stderr and "zookeeper unreadable" in blind.stderr
            assert "password authentication failed" in blind.stderr
            assert "check RECONCILER_ZK_PASSWORD" in blind.stderr
    finally:
        good.close()
        evidence.add("good log", "".join(good.lines))

    # -- every password wrong: blind passes, errors in the log and the status -------------
    bad = DaemonProcess(tmp_path, zk_hosts, wrong_db_url, kube, policy, "bad", env=wrong)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{bad.port}", timeout=30) as http:

            def all_refused() -> bool:
                sources = (bad.status() or {}).get("sources", {})
                return (
                    {"database", "zookeeper"} <= set(sources)
                    and source_up(http, "mqtt") == 0
                    and source_up(http, "kafka") == 0
                )

            eventually(all_refused, timeout=60, what="every login of the bad daemon refused")
            before = passes(http)

            def more_refusals_logged() -> bool:
                # A few more blind passes (tick 1 s) and reconnect attempts, each logged.
                log = "".join(bad.lines)
                return (
                    passes(http) >= before + 3
                    and "password authentication failed" in log
                    and "NoAuthError" in log
                    and "no bootstrap from" in log
                )

            eventually(more_refusals_logged, timeout=30, what="3 more blind passes, logged")
            evidence.http("bad /v1/status", http.get("/v1/status"))
            evidence.http("bad /metrics", http.get("/metrics"))
            evidence.http("bad /readyz", http.get("/readyz"))
    finally:
        bad.close()
        evidence.add("bad log", "".join(bad.lines))
    log = evidence.texts["bad log"]
    assert "password authentication failed" in log and "NoAuthError" in log
    kafka_said = [line for line in log.splitlines() if "no bootstrap from" in line]
    assert kafka_said and all("authentication failed" in line for line in kafka_said), kafka_said
    assert "***" in evidence.texts["good log"]  # the logged settings, masked

    # -- settings errors around a password: one line each, never the value ----------------
    base = {**daemon_env(tmp_path, zk_hosts, db_url, kube), "RECONCILER_POLICY_PATH": str(policy)}
    both = {**base, **right, "RECONCILER_ZK_PASSWORD": ZK_PW}
    no_user = {**base, "RECONCILER_ZK_PASSWORD": ZK_PW}
    token_file = {**base, "RECONCILER_API_TOKEN": TOKEN, "RECONCILER_API_TOKEN_FILE": "/nope"}
    for where, env in (("both ways", both), ("no user", no_user), ("token twice", token_file)):
        result = evidence.cli(f"run {where}", ["run"], env, tmp_path)
        assert result.returncode == 2 and "invalid settings" in result.stderr, result.stderr

    assert evidence.leaks() == []
    with contextlib.suppress(Exception):
        producer.close(timeout=5)
