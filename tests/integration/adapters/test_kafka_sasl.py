"""Kafka with SASL switched on (issue 13, SECURITY.md "Kafka"): the rig's broker with only a
SASL_PLAINTEXT listener (mechanism PLAIN). The heartbeat monitor, given the login through
the daemon's settings, reads heartbeats; a monitor or a plain consumer without it reads
nothing.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Iterator

import pytest
from kafka import KafkaConsumer, KafkaProducer
from kafka.errors import KafkaError

from reconciler.adapters.kafka.heartbeats import HeartbeatMonitor
from reconciler.config.settings import Settings
from reconciler.wiring import kafka_security
from rig.servers import Kafka
from tests.support.polling import eventually, seconds_until
from tests.support.serving import serve

PASSWORD = f"hb-{uuid.uuid4().hex}"


@pytest.fixture(scope="module")
def sasl_kafka() -> Iterator[Kafka]:
    yield from serve(Kafka(sasl_users={"reconciler": PASSWORD, "worker": f"w-{uuid.uuid4().hex}"}))


class Beating:
    """A worker's heartbeat for Thing/0 every 0.3 s, logged in as `worker`, on `topic`."""

    def __init__(self, kafka: Kafka, topic: str) -> None:
        self.producer = KafkaProducer(
            bootstrap_servers=kafka.bootstrap, linger_ms=0, **kafka.client_options("worker")
        )
        self.topic = topic
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.wait(0.3):
            value = {"resource": "Thing", "instanceId": "0", "timestamp": str(int(time.time()))}
            self.producer.send(self.topic, json.dumps(value).encode(), key=b"hb")

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        self.producer.close(timeout=5)


def monitor(kafka: Kafka, topic: str, **settings: object) -> HeartbeatMonitor:
    """The monitor as `reconciler run` builds it from these settings."""
    s = Settings(_env_file=None, kafka_bootstrap=kafka.bootstrap, **settings)  # type: ignore[arg-type]
    return HeartbeatMonitor(
        kafka.bootstrap,
        ["Thing"],
        topic=topic,
        group=f"t-{uuid.uuid4().hex[:8]}",
        security=kafka_security(s),
    )


def stranger_reads(kafka: Kafka, topic: str) -> int:
    """Records a plain consumer without a login gets: its bootstrap fails (KafkaError)."""
    try:
        consumer = KafkaConsumer(
            topic,
            bootstrap_servers=kafka.bootstrap,
            group_id=f"s-{uuid.uuid4().hex[:8]}",
            auto_offset_reset="earliest",
            request_timeout_ms=3000,
        )
    except KafkaError:
        return 0
    try:
        return sum(len(r) for r in consumer.poll(timeout_ms=3000).values())
    finally:
        consumer.close()


def test_the_daemon_with_its_sasl_login_reads_heartbeats_and_strangers_read_nothing(
    sasl_kafka: Kafka, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="reconciler.adapters.heartbeats")
    topic = f"HeartBeat-{uuid.uuid4().hex[:8]}"
    logged_in = monitor(
        sasl_kafka,
        topic,
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_sasl_mechanism="PLAIN",
        kafka_sasl_username="reconciler",
        kafka_sasl_password=PASSWORD,
    )
    anonymous = monitor(sasl_kafka, topic)
    wrong = monitor(
        sasl_kafka,
        topic,
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_sasl_username="reconciler",
        kafka_sasl_password="guess",
    )
    beats = Beating(sasl_kafka, topic)
    for m in (logged_in, anonymous, wrong):
        m.start()
    try:
        seconds_until(
            lambda: 0 in logged_in.snapshot("Thing").last_seen,
            timeout=60,
            interval=0.1,
            what="a heartbeat through the SASL login",
        )
        assert logged_in.snapshot("Thing").connected

        def both_refusals_said() -> list[str]:
            """Each of the others says why it was refused (the broker has answered both)."""
            said = [r.getMessage() for r in caplog.records if "no bootstrap from" in r.getMessage()]
            assert any("authentication failed" in line for line in said), said
            assert any("want SASL or TLS" in line for line in said), said  # the anonymous one
            return said

        said = eventually(both_refusals_said, timeout=30, what="both refusals logged")
        for m in (anonymous, wrong):
            snap = m.snapshot("Thing")
            assert snap.last_seen == {} and not snap.connected
        assert stranger_reads(sasl_kafka, topic) == 0
        # None says "no broker answers" while the broker does answer.
        assert not any("no broker answers" in line for line in said), said
    finally:
        beats.close()
        for m in (logged_in, anonymous, wrong):
            m.stop()
