"""One smoke test per rig server, through the client library the daemon uses (issue 2)."""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.support.polling import eventually

# ------------------------------------------------------------------ ZooKeeper


def test_zookeeper_three_znodes_in_one_transaction(kazoo_client: Any) -> None:
    kazoo_client.ensure_path("/iota-dac")
    tx = kazoo_client.transaction()
    for i in range(3):
        tx.create(f"/iota-dac/{i}", f"ids-{i}".encode())
    results = tx.commit()
    assert results == [f"/iota-dac/{i}" for i in range(3)]
    assert sorted(kazoo_client.get_children("/iota-dac")) == ["0", "1", "2"]
    for i in range(3):
        data, _ = kazoo_client.get(f"/iota-dac/{i}")
        assert data == f"ids-{i}".encode()


def test_zookeeper_stop_and_start_keeps_data(zk: Any, zk_hosts: str) -> None:
    from kazoo.client import KazooClient

    client = KazooClient(hosts=zk_hosts, timeout=10)
    client.start(timeout=15)
    client.create("/kept", b"v1")
    client.stop()
    client.close()

    zk.stop()
    assert not zk.running
    down = KazooClient(hosts=zk_hosts, timeout=2, connection_retry={"max_tries": 0})
    with pytest.raises(Exception):  # noqa: B017 - kazoo raises a timeout of its own
        down.start(timeout=2)
    down.close()

    zk.start()
    client = KazooClient(hosts=zk_hosts, timeout=10)
    client.start(timeout=15)
    try:
        assert client.get("/kept")[0] == b"v1"
    finally:
        client.stop()
        client.close()


# ------------------------------------------------------------------ PostgreSQL


def test_postgres_create_insert_count(pg_url: str) -> None:
    from sqlalchemy import Column, Integer, MetaData, String, Table, create_engine, func, select

    engine = create_engine(pg_url)
    meta = MetaData()
    thing = Table(
        "Thing", meta, Column("id", Integer, primary_key=True), Column("name", String(50))
    )
    try:
        meta.create_all(engine)
        with engine.begin() as conn:
            conn.execute(thing.insert(), [{"name": f"t{i}"} for i in range(5)])
        with engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(thing)).scalar_one() == 5
    finally:
        engine.dispose()


def test_postgres_databases_are_per_test(pg_url: str, pg: Any) -> None:
    from sqlalchemy import create_engine, inspect

    assert pg_url != pg.url
    engine = create_engine(pg_url)
    try:
        assert inspect(engine).get_table_names() == []
    finally:
        engine.dispose()


# ------------------------------------------------------------------ MQTT


def test_mqtt_publish_qos1_is_received(mqtt: Any) -> None:
    import paho.mqtt.client as paho

    got: list[tuple[str, bytes, int]] = []
    received = threading.Event()
    subscribed = threading.Event()

    sub = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"sub-{uuid.uuid4().hex[:6]}")
    sub.on_connect = lambda c, u, f, rc, p: c.subscribe("cm/notify", qos=1)
    sub.on_subscribe = lambda c, u, mid, rcs, p: subscribed.set()

    def on_message(c: Any, u: Any, msg: Any) -> None:
        got.append((msg.topic, msg.payload, msg.qos))
        received.set()

    sub.on_message = on_message
    sub.connect(mqtt.host, mqtt.port)
    sub.loop_start()
    pub = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:6]}")
    try:
        assert subscribed.wait(10)
        pub.connect(mqtt.host, mqtt.port)
        pub.loop_start()
        info = pub.publish("cm/notify", b'{"kind":"iota-dac","added":[1]}', qos=1)
        info.wait_for_publish(10)
        assert info.is_published()
        assert received.wait(10)
        assert got == [("cm/notify", b'{"kind":"iota-dac","added":[1]}', 1)]
    finally:
        for c in (pub, sub):
            c.loop_stop()
            c.disconnect()


# ------------------------------------------------------------------ Kafka


def test_kafka_produce_heartbeat_and_consume_in_group(kafka: Any) -> None:
    from kafka import KafkaConsumer, KafkaProducer

    value = f"instance-0 alive {uuid.uuid4().hex}".encode()
    producer = KafkaProducer(bootstrap_servers=kafka.bootstrap, acks="all")
    try:
        producer.send("HeartBeat", key=b"iota-dac-0", value=value).get(timeout=30)
        producer.flush(10)
    finally:
        producer.close()

    consumer = KafkaConsumer(
        "HeartBeat",
        bootstrap_servers=kafka.bootstrap,
        group_id=f"smoke-{uuid.uuid4().hex[:6]}",
        auto_offset_reset="earliest",
        consumer_timeout_ms=1000,
    )
    try:
        seen: list[bytes] = []

        def poll() -> bool:
            seen.extend(m.value for m in consumer)
            return value in seen

        eventually(poll, timeout=60)
        consumer.commit()
    finally:
        consumer.close()


# ------------------------------------------------------------------ Prometheus


def test_prometheus_scrapes_a_client_endpoint(prometheus: Any) -> None:
    from prometheus_client import CollectorRegistry, Gauge, start_http_server

    registry = CollectorRegistry()
    gauge = Gauge("rig_smoke_value", "a value for the rig smoke test", registry=registry)
    gauge.set(42.5)
    server, thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    try:
        port = server.server_address[1]
        prometheus.scrape([f"127.0.0.1:{port}"])
        result = eventually(lambda: prometheus.query("rig_smoke_value"), timeout=30)
        assert float(result[0]["value"][1]) == 42.5
        assert result[0]["metric"]["instance"] == f"127.0.0.1:{port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


# ------------------------------------------------------------------ Kubernetes


def test_kube_pod_lifecycle_from_template(kube: Any, kube_namespace: str) -> None:
    import yaml
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    from rig.kube import STATUS_ANNOTATION

    manifest = yaml.safe_load(Path("templates/iota-dac/pod-template.yml").read_text())
    manifest["metadata"]["namespace"] = kube_namespace
    name = manifest["metadata"]["name"]
    with kube.api_client() as api:
        v1 = client.CoreV1Api(api)
        v1.create_namespaced_pod(kube_namespace, manifest)

        def running() -> Any:
            pod = v1.read_namespaced_pod(name, kube_namespace)
            return pod if pod.status.phase == "Running" else None

        pod = eventually(running, timeout=30)
        assert pod.spec.node_name in kube.node_names  # bound by kube-scheduler

        # kwok leaves pods annotated "custom" alone, so the Failed status sticks
        v1.patch_namespaced_pod(
            name, kube_namespace, {"metadata": {"annotations": {STATUS_ANNOTATION: "custom"}}}
        )
        v1.patch_namespaced_pod_status(
            name, kube_namespace, {"status": {"phase": "Failed", "reason": "Error"}}
        )
        time.sleep(1)  # under test: kwok leaves the status alone for that long
        assert v1.read_namespaced_pod(name, kube_namespace).status.phase == "Failed"

        v1.delete_namespaced_pod(name, kube_namespace)

        def gone() -> bool:
            try:
                v1.read_namespaced_pod(name, kube_namespace)
            except ApiException as exc:
                assert exc.status == 404
                return True
            return False

        eventually(gone, timeout=30)


def test_kube_nodes_and_restricted_token(kube: Any) -> None:
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    with kube.api_client() as api:
        nodes = {n.metadata.name: n for n in client.CoreV1Api(api).list_node().items}
    assert set(kube.node_names) <= set(nodes)
    for name in kube.node_names:
        assert nodes[name].status.allocatable["cpu"] == "16"
    with kube.api_client(kube.tokens["nobody"]) as api:
        with pytest.raises(ApiException) as err:
            client.CoreV1Api(api).list_namespaced_pod("iota")
        assert err.value.status == 403


def test_kube_apiserver_stop_and_start(kube: Any, kube_namespace: str) -> None:
    from kubernetes import client

    kube.stop()
    with kube.api_client() as api, pytest.raises(Exception):  # noqa: B017 - connection refused
        client.CoreV1Api(api).read_namespace(kube_namespace, _request_timeout=3)
    kube.start()
    with kube.api_client() as api:
        assert client.CoreV1Api(api).read_namespace(kube_namespace).metadata.name == kube_namespace
