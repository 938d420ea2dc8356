"""The daemon reacting at once: MQTT row events, Kafka heartbeats and the pod watch, end to end.

The daemon is wired exactly as `reconciler run` wires it (reconciler.wiring.build from Settings)
against the rig's Mosquitto, Kafka, PostgreSQL, ZooKeeper and apiserver+kwok, with a 60 s
tick so that anything that happens sooner was done by the event paths.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt_client
import pytest
from kafka import KafkaProducer
from kubernetes import client as k8s
from paho.mqtt.enums import CallbackAPIVersion

from reconciler.adapters.sql.inventory import delete_ids, insert_ids
from reconciler.runtime.loop import Wake, WakeReason
from reconciler.telemetry import metrics
from reconciler.wiring import App
from tests.support.daemon import running, settings_for
from tests.support.fleet import (
    REPO,
    HeartbeatSender,
    eventually,
    read_layout,
    seed,
    write_policy,
)


class Publisher:
    """QoS-1 publisher to cm/notify that waits for each PUBACK."""

    def __init__(self, host: str, port: int) -> None:
        self.client = mqtt_client.Client(
            CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4()}"
        )
        self.client.connect(host, port)
        self.client.loop_start()

    def send(self, payload: dict[str, Any] | bytes) -> None:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        info = self.client.publish("cm/notify", data, qos=1)
        info.wait_for_publish(timeout=10)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture
def daemon(
    zk_hosts: str,
    pg_url: str,
    kube: Any,
    kube_namespace: str,
    mqtt: Any,
    kafka: Any,
    tmp_path: Path,
) -> Iterator[tuple[App, str, k8s.CoreV1Api, str]]:
    seed(pg_url, things=2000, rules=50)
    policy = write_policy(
        tmp_path / "policy.yaml",
        kube_namespace,
        tick=60,
        Thing={
            "initInstances": 3,
            "heartbeat": {"enabled": True, "timeoutSeconds": 5, "graceSeconds": 3},
        },
    )
    settings = settings_for(zk_hosts, pg_url, kube, policy, mqtt=mqtt.url, kafka=kafka.bootstrap)
    with running(settings) as daemon:
        app = daemon.app
        core = k8s.CoreV1Api(kube.api_client())
        eventually(lambda: len(app.daemon.state.world.assignment("Thing") or {}) == 3, timeout=30)
        yield app, pg_url, core, kube_namespace


def instance_of(kazoo: Any, rid: str) -> tuple[int, int] | None:
    """(instance id, _reload.times) of the instance serving `rid`, from ZooKeeper itself."""
    for i, inst in read_layout(kazoo, "Thing").items():
        if rid in inst["ids"]:
            return i, inst["times"]
    return None


def reload_times(kazoo: Any) -> dict[int, int]:
    return {i: inst["times"] for i, inst in read_layout(kazoo, "Thing").items()}


@pytest.mark.parametrize("form", ["c", "bc"])
def test_a_created_row_and_its_message_reach_a_live_instance_at_once(
    daemon: tuple[App, str, k8s.CoreV1Api, str], mqtt: Any, kazoo_client: Any, form: str
) -> None:
    _, db, _, _ = daemon
    before = reload_times(kazoo_client)
    rid = str(uuid.uuid4())
    insert_ids(db, "Thing", [rid])
    pub = Publisher(mqtt.host, mqtt.port)
    try:
        sent = time.monotonic()
        if form == "c":
            pub.send({"o": "c", "t": "Thing", "k": {"id": rid}, "instance": {"id": rid}})
        else:
            pub.send({"o": "bc", "t": "Thing", "keys": [{"id": rid}]})
        where = eventually(lambda: instance_of(kazoo_client, rid), timeout=10)
        took = time.monotonic() - sent
    finally:
        pub.close()
    instance, times = where
    assert times == before[instance] + 1
    assert took < 10  # the tick is 60 s: only the event path can have done this


@pytest.mark.parametrize("form", ["d", "bd-one", "bd-list"])
def test_a_deleted_row_leaves_its_instance_at_once(
    daemon: tuple[App, str, k8s.CoreV1Api, str], mqtt: Any, kazoo_client: Any, form: str
) -> None:
    _, db, _, _ = daemon
    layout = read_layout(kazoo_client, "Thing")
    victims = layout[0]["ids"][:3] if form == "bd-list" else layout[0]["ids"][:1]
    before = layout[0]["times"]
    delete_ids(db, "Thing", victims)
    pub = Publisher(mqtt.host, mqtt.port)
    try:
        if form == "d":
            pub.send({"o": "d", "t": "Thing", "k": {"id": victims[0]}})
        elif form == "bd-one":
            pub.send({"o": "bd", "t": "Thing", "where": {"id": victims[0]}})
        else:
            pub.send({"o": "bd", "t": "Thing", "where": {"id": victims}})
        eventually(lambda: all(instance_of(kazoo_client, v) is None for v in victims), timeout=10)
    finally:
        pub.close()
    assert read_layout(kazoo_client, "Thing")[0]["times"] == before + 1


def test_bursts_of_5000_creates_are_coalesced_into_few_writes(
    daemon: tuple[App, str, k8s.CoreV1Api, str], mqtt: Any, kazoo_client: Any
) -> None:
    app, db, _, _ = daemon
    bulk = [str(uuid.uuid4()) for _ in range(5000)]
    singles = [str(uuid.uuid4()) for _ in range(5000)]
    insert_ids(db, "Thing", bulk + singles)
    pub = Publisher(mqtt.host, mqtt.port)
    try:
        writes = app.zk.session.writes
        pub.send({"o": "bc", "t": "Thing", "keys": [{"id": i} for i in bulk]})
        eventually(
            lambda: (
                sum(i["node"]["used"] for i in read_layout(kazoo_client, "Thing").values()) == 7000
            ),
            timeout=30,
        )
        bulk_writes = app.zk.session.writes - writes

        writes = app.zk.session.writes
        # From another process, as the database layer publishes (bench/publish.py).
        subprocess.run(
            [sys.executable, "-m", "bench.publish", mqtt.host, str(mqtt.port)],
            input="\n".join(json.dumps({"o": "c", "t": "Thing", "k": {"id": r}}) for r in singles),
            text=True,
            check=True,
            timeout=300,
            cwd=REPO,
        )
        eventually(
            lambda: (
                sum(i["node"]["used"] for i in read_layout(kazoo_client, "Thing").values())
                == 12_000
            ),
            timeout=20,  # the tick is 60 s: only the event path can make it in time
        )
        single_writes = app.zk.session.writes - writes
    finally:
        pub.close()
    instances = len(read_layout(kazoo_client, "Thing"))
    # Each instance written a handful of times, not once per id.
    assert bulk_writes <= 2 * instances
    assert single_writes <= 5 * instances, single_writes


def test_duplicates_change_nothing_and_ids_the_table_lacks_are_never_assigned(
    daemon: tuple[App, str, k8s.CoreV1Api, str], mqtt: Any, kazoo_client: Any
) -> None:
    app, db, _, _ = daemon
    rid = str(uuid.uuid4())
    insert_ids(db, "Thing", [rid])
    pub = Publisher(mqtt.host, mqtt.port)
    try:
        msg = {"o": "c", "t": "Thing", "k": {"id": rid}}
        passes = app.daemon.passes
        pub.send(msg)
        eventually(lambda: instance_of(kazoo_client, rid), timeout=10)
        # The pass that wrote it is over (it counts itself after its writes; the tick is 60 s).
        eventually(lambda: app.daemon.passes > passes, timeout=10, what="the event pass")
        writes = app.zk.session.writes
        pub.send(msg)
        pub.send(msg)
        time.sleep(1.0)  # under test: the replays write nothing in that time
        assert app.zk.session.writes == writes, "a replayed message wrote to ZooKeeper"

        phantom = str(uuid.uuid4())  # never inserted in the database
        pub.send({"o": "c", "t": "Thing", "k": {"id": phantom}})
        later = str(uuid.uuid4())  # a real create sent after it: once it is served, the
        insert_ids(db, "Thing", [later])  # phantom's message has been read and checked
        pub.send({"o": "c", "t": "Thing", "k": {"id": later}})
        eventually(lambda: instance_of(kazoo_client, later), timeout=10)
    finally:
        pub.close()
    assert instance_of(kazoo_client, phantom) is None
    app.daemon.wake(Wake(WakeReason.TICK))  # the periodic pass, without waiting 60 s for it
    eventually(lambda: app.daemon.last_pass and app.daemon.last_pass.trigger == "tick")
    assert instance_of(kazoo_client, phantom) is None
    assert instance_of(kazoo_client, rid) is not None


def test_garbage_is_counted_and_the_daemon_keeps_running(
    daemon: tuple[App, str, k8s.CoreV1Api, str], mqtt: Any, kafka: Any, kazoo_client: Any
) -> None:
    _, db, _, _ = daemon
    bad_mqtt = metrics.EVENTS_MALFORMED.labels("mqtt")._value.get()
    bad_kafka = metrics.EVENTS_MALFORMED.labels("kafka")._value.get()
    pub = Publisher(mqtt.host, mqtt.port)
    producer = KafkaProducer(bootstrap_servers=kafka.bootstrap)
    try:
        for payload in (b"not json", b"[]", b'{"o":"c","t":"Thing"}', b'{"o":"bd","t":"Thing"}'):
            pub.send(payload)
        for payload in (
            b"\xff\xfe",
            b'{"resource":"Thing"}',
            b'{"resource":"Thing","instanceId":"x"}',
        ):
            producer.send("HeartBeat", payload)
        producer.flush(10)
        ignored = {
            r: metrics.EVENTS_IGNORED.labels("mqtt", r)._value.get()
            for r in ("update", "unknown-op", "other-table")
        }
        pub.send({"o": "u", "t": "Thing", "k": {"id": "x"}})
        pub.send({"o": "truncate", "t": "Thing"})
        pub.send({"o": "c", "t": "DeviceMeta", "k": {"id": "x"}})
        eventually(lambda: metrics.EVENTS_MALFORMED.labels("mqtt")._value.get() >= bad_mqtt + 4)
        eventually(
            lambda: all(
                metrics.EVENTS_IGNORED.labels("mqtt", r)._value.get() == ignored[r] + 1
                for r in ignored
            )
        )
        eventually(
            lambda: metrics.EVENTS_MALFORMED.labels("kafka")._value.get() >= bad_kafka + 3,
            timeout=30,
        )
        rid = str(uuid.uuid4())
        insert_ids(db, "Thing", [rid])
        pub.send({"o": "c", "t": "Thing", "k": {"id": rid}})
        eventually(lambda: instance_of(kazoo_client, rid), timeout=10)  # still serving
    finally:
        pub.close()
        producer.close()


def uid(core: k8s.CoreV1Api, ns: str, name: str) -> str:
    return core.read_namespaced_pod(name, ns).metadata.uid


def test_a_silent_worker_is_recreated_but_nobody_while_kafka_is_down(
    daemon: tuple[App, str, k8s.CoreV1Api, str], kafka: Any
) -> None:
    app, _, core, ns = daemon
    eventually(
        lambda: all(
            core.read_namespaced_pod(f"iota-dac-{i}", ns).status.phase == "Running"
            for i in range(3)
        ),
        timeout=30,
    )
    uids = {i: uid(core, ns, f"iota-dac-{i}") for i in range(3)}
    workers = HeartbeatSender(kafka.bootstrap, {0, 2})  # instance 1 says nothing
    try:
        eventually(lambda: uid(core, ns, "iota-dac-1") != uids[1], timeout=30)
        assert uid(core, ns, "iota-dac-0") == uids[0] and uid(core, ns, "iota-dac-2") == uids[2]

        # Kafka down for longer than the 5 s timeout: nobody may be recreated for silence.
        workers.instances = {0, 1, 2}
        eventually(lambda: app.daemon.ports.heartbeats.snapshot("Thing").last_seen.get(1))
        before = {i: uid(core, ns, f"iota-dac-{i}") for i in range(3)}
        kafka.stop()
        eventually(lambda: not app.daemon.ports.heartbeats.snapshot("Thing").connected, timeout=30)
        time.sleep(8)  # under test: down past the 5 s timeout, and no pod recreated meanwhile
        assert {i: uid(core, ns, f"iota-dac-{i}") for i in range(3)} == before
        note = app.daemon.status()["kinds"]["Thing"]["heartbeat"]
        assert note and "unreachable" in note

        # Kafka back: heartbeats count again, a worker that stays silent is recreated.
        workers.instances = {0, 2}
        kafka.start()
        eventually(lambda: app.daemon.ports.heartbeats.snapshot("Thing").connected, timeout=60)
        eventually(lambda: uid(core, ns, "iota-dac-1") != before[1], timeout=40)
        assert uid(core, ns, "iota-dac-0") == before[0]
    finally:
        workers.close()


def test_a_failed_pod_is_replaced_within_two_seconds_by_the_watch(
    daemon: tuple[App, str, k8s.CoreV1Api, str],
) -> None:
    _, _, core, ns = daemon
    name = "iota-rules-engine-1"
    eventually(lambda: core.read_namespaced_pod(name, ns).status.phase == "Running", timeout=30)
    old = uid(core, ns, name)
    core.patch_namespaced_pod(
        name, ns, {"metadata": {"annotations": {"kwok.x-k8s.io/status": "custom"}}}
    )
    failed_at = time.monotonic()
    core.patch_namespaced_pod_status(name, ns, {"status": {"phase": "Failed"}})

    def replaced() -> bool:
        pod = core.read_namespaced_pod(name, ns)
        return pod.metadata.uid != old and pod.metadata.deletion_timestamp is None

    eventually(replaced, timeout=10, interval=0.05)
    took = time.monotonic() - failed_at
    assert took < 2.0, f"replaced after {took:.2f}s"

    # `kubectl get events` tells what the daemon did and why (events.k8s.io/v1).
    def recorded() -> list[Any]:
        items = k8s.EventsV1Api(core.api_client).list_namespaced_event(ns).items
        return [
            e
            for e in items
            if e.regarding.name == name and e.reason == "PodDead" and e.action == "Delete"
        ]

    (event,) = eventually(recorded, timeout=15)
    assert event.reporting_controller and event.type == "Warning"
    assert event.regarding.uid == old
