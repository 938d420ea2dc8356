"""MQTT 3.1.1 and 5 for `cm/notify` (RECONCILER_MQTT_PROTOCOL), against real brokers.

- The rig's Mosquitto 2.0 speaks 5, 3.1.1 and 3.1 on every listener and has no setting to
  refuse a version (`man mosquitto.conf`: a listener's `protocol` is mqtt or websockets).
- amqtt 0.12 (PyPI, Python) is a real broker that speaks only MQTT 3.1.1: it is what an old
  platform's 3.1.1-only broker looks like to us. To a v5 CONNECT it sends no CONNACK at all
  (it parses the v5 properties as the client id and waits for bytes that never come), so the
  fallback that meets it here is "the connection ended without a CONNACK". The CONNACK
  refusal (return code 1, or 0x84) is pinned in tests/unit/adapters/test_mqtt_protocol_choice.py
  with the bytes decoded by paho's own parser.
"""

from __future__ import annotations

import logging
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler.adapters.mqtt.notify import NotifyListener
from reconciler.domain.events import RowEvent
from rig.process import Proc, free_port, port_open, wait_until
from tests.support.mqtt import Publisher, Recorder, wait_for
from tests.support.polling import eventually

KEEPALIVE = 2  # s: a broker that never answers our CONNECT is given up after ~1.5x


class Amqtt:
    """amqtt's broker on a free 127.0.0.1 port, anonymous, its log in a temp dir."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="reconciler-rig-amqtt-"))
        self.host, self.port = "127.0.0.1", free_port()
        config = self.dir / "broker.yaml"
        config.write_text(
            "listeners:\n"
            "  default:\n"
            "    type: tcp\n"
            f"    bind: {self.host}:{self.port}\n"
            "plugins:\n"
            "  amqtt.plugins.authentication.AnonymousAuthPlugin:\n"
            "    allow_anonymous: true\n"
        )
        amqtt = Path(sys.executable).parent / "amqtt"  # the dev extra's console script
        self.proc = Proc("amqtt", [amqtt, "-c", config], self.dir / "amqtt.log")

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    def start(self) -> Amqtt:
        self.proc.start()
        wait_until(lambda: port_open(self.port), procs=[self.proc], timeout=30, what="amqtt")
        return self

    def stop(self) -> None:
        self.proc.stop()


@pytest.fixture(scope="module")
def amqtt() -> Iterator[Amqtt]:
    broker = Amqtt().start()
    yield broker
    broker.stop()


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def listeners() -> Iterator[list[NotifyListener]]:
    made: list[NotifyListener] = []
    yield made
    for listener in made:
        listener.stop()


def listener_for(
    url: str, recorder: Recorder, made: list[NotifyListener], **kw: Any
) -> NotifyListener:
    kw.setdefault("client_id", f"reconciler-test-{uuid.uuid4().hex[:8]}")
    kw.setdefault("topic", f"cm/notify/test-{uuid.uuid4().hex[:8]}")
    listener = NotifyListener(
        url,
        recorder.on_event,
        on_malformed=recorder.on_malformed,
        reconnect_delay=0.5,
        keepalive=KEEPALIVE,
        **kw,
    )
    made.append(listener)
    return listener


def create(publisher: Publisher, row_id: str) -> None:
    publisher.send({"o": "c", "t": "Thing", "k": {"id": row_id}, "instance": {"id": row_id}})


def test_auto_falls_back_to_3_1_1_on_a_3_1_1_only_broker_and_events_arrive(
    amqtt: Amqtt,
    recorder: Recorder,
    listeners: list[NotifyListener],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="reconciler.adapters.notify")
    listener = listener_for(amqtt.url, recorder, listeners, protocol="auto")
    assert listener.protocol == "5"
    listener.start()
    took = wait_for(lambda: listener.connected, timeout=30, what="connected after the fallback")
    print(f"\nauto: connected with MQTT {listener.protocol} after {took:.1f} s")
    assert listener.protocol == "3.1.1"
    [fallback] = [r for r in caplog.records if "from now on" in r.getMessage()]
    assert fallback.levelno == logging.WARNING
    assert "closed the MQTT 5 connection without a CONNACK" in fallback.getMessage()

    publisher = Publisher(amqtt.host, amqtt.port, listener.topic)
    try:
        create(publisher, "a-1")
        wait_for(lambda: RowEvent("Thing", added=frozenset({"a-1"})) in recorder.events)
    finally:
        publisher.close()


def test_forced_3_1_1_resumes_its_session_on_a_3_1_1_only_broker_across_restarts(
    amqtt: Amqtt,
    recorder: Recorder,
    listeners: list[NotifyListener],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # clean_session=False under 3.1.1: the broker keeps our session for the same client id and
    # says so in its CONNACK (session present). (amqtt 0.12 resumes sessions but does not
    # deliver what was queued meanwhile; queued delivery under 3.1.1 is checked on Mosquitto
    # below. It also forgets a client's session when a v5 CONNECT with that id arrives, so on
    # such a broker `auto` costs the session at every start: the README says to set 3.1.1.)
    caplog.set_level(logging.INFO, logger="reconciler.adapters.notify")
    client_id = f"reconciler-test-{uuid.uuid4().hex[:8]}"
    topic = f"cm/notify/test-{uuid.uuid4().hex[:8]}"
    for _ in range(2):
        listener = listener_for(
            amqtt.url, recorder, listeners, client_id=client_id, topic=topic, protocol="3.1.1"
        )
        listener.start()
        assert listener.wait_connected(15), "never connected"
        listener.stop()
    connects = [r.getMessage() for r in caplog.records if "mqtt connected" in r.getMessage()]
    assert len(connects) == 2, connects
    assert "with MQTT 3.1.1 (session present: False)" in connects[0]
    assert "with MQTT 3.1.1 (session present: True)" in connects[1]
    assert not [r for r in caplog.records if "speaking MQTT 3.1.1 from now on" in r.getMessage()]


def test_forced_5_does_not_fall_back_on_a_3_1_1_only_broker(
    amqtt: Amqtt,
    recorder: Recorder,
    listeners: list[NotifyListener],
    caplog: pytest.LogCaptureFixture,
) -> None:
    listener = listener_for(amqtt.url, recorder, listeners, protocol="5")
    listener.start()

    def unanswered() -> int:
        """MQTT 5 CONNECTs given up on (a warning each): no fallback after any of them."""
        said = "before answering our MQTT 5 CONNECT"
        return sum(said in r.getMessage() for r in caplog.records)

    eventually(lambda: unanswered() >= 2, timeout=6 * KEEPALIVE + 5, what="2 attempts given up")
    assert not listener.connected
    assert listener.protocol == "5"


@pytest.mark.parametrize(("setting", "spoken"), [("auto", "5"), ("5", "5"), ("3.1.1", "3.1.1")])
def test_mosquitto_sessions_persist_under_each_protocol_setting(
    mqtt: Any, recorder: Recorder, listeners: list[NotifyListener], setting: str, spoken: str
) -> None:
    client_id = f"reconciler-test-{uuid.uuid4().hex[:8]}"
    topic = f"cm/notify/test-{uuid.uuid4().hex[:8]}"

    def listener() -> NotifyListener:
        made = listener_for(
            mqtt.url, recorder, listeners, client_id=client_id, topic=topic, protocol=setting
        )
        made.start()
        assert made.wait_connected(15), "never connected"
        assert made.protocol == spoken  # Mosquitto speaks 5: auto never falls back here
        return made

    first = listener()
    publisher = Publisher(mqtt.host, mqtt.port, topic)
    try:
        create(publisher, "live")
        wait_for(lambda: RowEvent("Thing", added=frozenset({"live"})) in recorder.events)
        first.stop()
        create(publisher, "while-away")  # queued in our persistent session
    finally:
        publisher.close()
    listener()
    wait_for(lambda: RowEvent("Thing", added=frozenset({"while-away"})) in recorder.events)
