"""MQTT with authentication and TLS switched on (issue 13, SECURITY.md "MQTT"): the rig's
Mosquitto with a password file and no anonymous clients, plus a TLS listener whose
certificate comes from a throw-away CA. The daemon, given its user, password, the CA and a
client certificate, receives `cm/notify` over mqtts:// and applies a row event to ZooKeeper
at once; clients without credentials, with a wrong password or trusting another CA are
refused, so nothing they send can reach the daemon.
"""

from __future__ import annotations

import ssl
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from reconciler.adapters.mqtt.notify import NotifyListener
from reconciler.adapters.sql.inventory import insert_ids
from reconciler.telemetry.metrics import REGISTRY
from rig.servers import Mosquitto
from tests.support.daemon import running, settings_for
from tests.support.fleet import eventually, read_layout, seed, write_policy
from tests.support.serving import serve

DAEMON_PW = f"daemon-{uuid.uuid4().hex}"
PUBLISHER_PW = f"publisher-{uuid.uuid4().hex}"


@pytest.fixture(scope="module")
def secure_mqtt() -> Iterator[Mosquitto]:
    yield from serve(Mosquitto(users={"reconciler": DAEMON_PW, "db-layer": PUBLISHER_PW}, tls=True))


def connack(
    port: int, *, login: tuple[str, str] | None = None, tls: ssl.SSLContext | None = None
) -> tuple[Any, mqtt.Client]:
    """Connect once; the CONNACK reason code (or the exception of a failed handshake)."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"t-{uuid.uuid4().hex[:8]}")
    if login:
        client.username_pw_set(*login)
    if tls:
        client.tls_set_context(tls)
    answered = threading.Event()
    result: list[Any] = []

    def on_connect(_c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        result.append(reason)
        answered.set()

    client.on_connect = on_connect
    try:
        client.connect("127.0.0.1", port, keepalive=5)
    except (ssl.SSLError, OSError) as e:
        return e, client
    client.loop_start()
    answered.wait(5)
    return (result[0] if result else None), client


def publish(server: Mosquitto, payload: str) -> None:
    rc, client = connack(server.port, login=("db-layer", PUBLISHER_PW))
    assert not rc.is_failure
    try:
        info = client.publish("cm/notify", payload, qos=1)
        info.wait_for_publish(timeout=5)
        assert info.is_published()
    finally:
        client.disconnect()
        client.loop_stop()


def test_clients_without_the_password_or_the_ca_are_refused(secure_mqtt: Mosquitto) -> None:
    pki = secure_mqtt.pki
    assert pki is not None and secure_mqtt.tls_port is not None
    anonymous, c1 = connack(secure_mqtt.port)
    wrong, c2 = connack(secure_mqtt.port, login=("reconciler", "guess"))
    for client in (c1, c2):
        client.loop_stop()
    assert anonymous is not None and anonymous.is_failure, anonymous  # Not authorized
    assert wrong is not None and wrong.is_failure, wrong
    other = ssl.create_default_context(cafile=str(pki.other_ca))
    handshake, _ = connack(secure_mqtt.tls_port, login=("reconciler", DAEMON_PW), tls=other)
    assert isinstance(handshake, ssl.SSLCertVerificationError), handshake
    right = ssl.create_default_context(cafile=str(pki.ca))
    ok, c3 = connack(secure_mqtt.tls_port, login=("reconciler", DAEMON_PW), tls=right)
    c3.disconnect()
    c3.loop_stop()
    assert ok is not None and not ok.is_failure, ok


def test_a_listener_without_credentials_never_subscribes(secure_mqtt: Mosquitto) -> None:
    events: list[Any] = []
    listener = NotifyListener(
        secure_mqtt.url, events.append, client_id=f"anon-{uuid.uuid4()}", reconnect_delay=0.5
    )
    listener.start()
    try:
        assert not listener.wait_connected(3)
        publish(secure_mqtt, '{"o": "c", "t": "Thing", "k": {"id": "x"}}')
        time.sleep(1)  # under test: nothing arrives in that time
    finally:
        listener.stop()
    assert events == []


def test_the_daemon_with_credentials_over_tls_applies_a_row_event_at_once(
    secure_mqtt: Mosquitto,
    zk_hosts: str,
    pg_url: str,
    kube: Any,
    kube_namespace: str,
    kazoo_client: Any,
    tmp_path: Path,
) -> None:
    pki = secure_mqtt.pki
    assert pki is not None and secure_mqtt.tls_url is not None
    seed(pg_url, things=200, rules=10)
    policy = write_policy(
        tmp_path / "policy.yaml", kube_namespace, tick=60, Thing={"initInstances": 2}
    )
    settings = settings_for(
        zk_hosts,
        pg_url,
        kube,
        policy,
        mqtt=secure_mqtt.tls_url,
        mqtt_username="reconciler",
        mqtt_password=DAEMON_PW,
        mqtt_ca_file=str(pki.ca),
        mqtt_cert_file=str(pki.client_cert),
        mqtt_key_file=str(pki.client_key),
    )
    with running(settings) as daemon:
        app = daemon.app
        eventually(lambda: len(app.daemon.state.world.assignment("Thing") or {}) == 2, timeout=30)
        # Its listener subscribed: reported up once the broker acknowledged the SUBSCRIBE.
        eventually(
            lambda: REGISTRY.get_sample_value("reconciler_source_up", {"source": "mqtt"}) == 1,
            timeout=15,
            what="the daemon's MQTT listener subscribed",
        )
        rid = str(uuid.uuid4())
        insert_ids(pg_url, "Thing", [rid])
        sent = time.monotonic()
        publish(secure_mqtt, f'{{"o": "c", "t": "Thing", "k": {{"id": "{rid}"}}}}')

        def served() -> bool:
            return any(rid in i["ids"] for i in read_layout(kazoo_client, "Thing").values())

        eventually(served, timeout=15)
        assert time.monotonic() - sent < 15  # tick is 60 s: the event path did it
    log = secure_mqtt.log_path.read_text()
    connected = [line for line in log.splitlines() if f"as {settings.mqtt_client_id} " in line]
    assert connected and all("u'reconciler'" in line for line in connected)  # its user
    peers = {line.split("connected from ")[1].split(" ")[0] for line in connected}
    assert all(f"New connection from {p} on port {secure_mqtt.tls_port}." in log for p in peers)
