"""What the broker keeps of the daemon's MQTT sessions after rollouts (issue 25, "Broker
sessions pile up"), counted by the rig's Mosquitto itself (`$SYS/broker/clients/*`, published
every second: `sys_interval 1` in rig/servers.py).

Each rollout stops the daemon's `cm/notify` listener and starts a new one, built from Settings
as reconciler/wiring.py builds it: a new pod with the same identity (the chart's StatefulSet),
a new pod with a new identity (a Deployment's `<hostname>-<pid>`), and MQTT 3.1.1. A message
published between two incarnations reaches the next one when its identity is stable: the
bounded session still rides out a restart.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from reconciler.adapters.mqtt.notify import NotifyListener
from reconciler.config.settings import Settings
from reconciler.domain.events import RowEvent
from rig.servers import Mosquitto
from tests.support.daemon import running, settings_for
from tests.support.fleet import eventually, seed, write_policy
from tests.support.mqtt import Publisher, Recorder
from tests.support.serving import serve

ROLLOUTS = 10
TOPIC = "cm/notify"


class BrokerSessions:
    """Mosquitto's own counts of its clients (this probe is one of the connected). The counts
    come once a second, and only when they change: `kept()` makes a change to see a fresh one."""

    def __init__(self, broker: Mosquitto) -> None:
        self.values: dict[str, int] = {}
        self._lock = threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="sessions-probe")
        self.client.on_message = self._on_message
        self.host, self.port = broker.host, broker.port
        self.client.connect(broker.host, broker.port, keepalive=10)
        self.client.subscribe("$SYS/broker/clients/#")
        self.client.loop_start()
        eventually(lambda: "disconnected" in self.values, timeout=5, what="$SYS counts")

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.values[msg.topic.rsplit("/", 1)[-1]] = int(msg.payload)

    def count(self, name: str) -> int:
        with self._lock:
            return self.values[name]

    def kept(self) -> int:
        """Sessions the broker holds now for clients that are gone. A marker client (clean
        session: it leaves nothing) connects; the first counts that show it show everything
        before it too (`disconnected` is published before `connected`)."""
        marker = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"m-{uuid.uuid4().hex}")
        marker.connect(self.host, self.port, keepalive=10)
        marker.loop_start()
        try:
            eventually(lambda: self.count("connected") == 2, timeout=5, what="the marker")
            return self.count("disconnected")
        finally:
            marker.disconnect()
            marker.loop_stop()
            eventually(lambda: self.count("connected") == 1, timeout=5, what="the marker gone")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def broker() -> Iterator[Mosquitto]:
    """A Mosquitto of this test's own: the counts are this test's clients only."""
    yield from serve(Mosquitto())


@pytest.fixture
def sessions(broker: Mosquitto) -> Iterator[BrokerSessions]:
    probe = BrokerSessions(broker)
    yield probe
    probe.close()


def listener_for(settings: Settings, recorder: Recorder) -> NotifyListener:
    """The listener with the MQTT settings reconciler/wiring.py passes it."""
    return NotifyListener(
        settings.mqtt_brokers,
        recorder.on_event,
        client_id=settings.mqtt_client,
        reconnect_delay=settings.mqtt_reconnect_seconds,
        protocol=settings.mqtt_protocol,
        session_expiry=settings.mqtt_session_expiry_seconds,
        stable_id=settings.mqtt_client_stable,
    )


def rollouts(
    broker: Mosquitto, identities: list[str | None], *, publish_between: bool = False, **extra: Any
) -> list[Recorder]:
    """One incarnation of the listener per identity (None: RECONCILER_IDENTITY unset), each
    started, subscribed, then stopped as a pod is; with `publish_between`, a `c` event is
    published while no incarnation runs. What each incarnation received."""
    received = []
    publisher = Publisher(broker.host, broker.port, TOPIC)
    try:
        for n, identity in enumerate(identities):
            given = {"identity": identity} if identity is not None else {}
            settings = Settings(_env_file=None, mqtt_brokers=broker.url, **given, **extra)
            recorder = Recorder()
            listener = listener_for(settings, recorder)
            listener.start()
            try:
                assert listener.wait_connected(10), f"rollout {n}: not subscribed"
                if publish_between and n > 0:
                    eventually(lambda r=recorder: r.events, timeout=5, what="the queued event")
            finally:
                listener.stop()
            received.append(recorder)
            if publish_between:
                publisher.send({"o": "c", "t": "Thing", "k": {"id": f"row-{n}"}})
    finally:
        publisher.close()
    return received


def test_rollouts_with_a_stable_identity_leave_one_session_that_rides_out_each_restart(
    broker: Mosquitto, sessions: BrokerSessions
) -> None:
    """The chart's StatefulSet: RECONCILER_IDENTITY=reconciler-0 in every new pod."""
    received = rollouts(broker, ["reconciler-0"] * ROLLOUTS, publish_between=True)
    assert sessions.kept() == 1
    assert sessions.count("maximum") == 3  # the probe, the marker and one session, ever
    # each new pod got what was published while no pod ran: the session was resumed
    for n, recorder in enumerate(received[1:], start=1):
        assert recorder.events == [RowEvent("Thing", added=frozenset({f"row-{n - 1}"}))], n
    print(f"{ROLLOUTS} rollouts, identity reconciler-0: {sessions.kept()} session kept")


def test_rollouts_with_changing_identities_leave_nothing_once_the_sessions_expire(
    broker: Mosquitto, sessions: BrokerSessions
) -> None:
    """A Deployment's pods: a new identity each time. Each leaves a session that expires."""
    expiry = 3
    pods = [f"reconciler-{uuid.uuid4().hex[:5]}-1" for _ in range(ROLLOUTS)]
    start = time.monotonic()
    rollouts(broker, pods, mqtt_session_expiry_seconds=expiry)
    took = time.monotonic() - start
    eventually(lambda: sessions.count("expired") == ROLLOUTS, timeout=expiry + 10)
    gone = time.monotonic() - start - took
    peak = sessions.count("maximum") - 1  # the probe; sampled once a second
    assert sessions.kept() == 0
    print(
        f"{ROLLOUTS} rollouts in {took:.1f}s, new identity each, expiry {expiry}s: at most "
        f"{peak} sessions held at once, 0 left {gone:.1f}s after the last"
    )


def test_without_an_expiry_bound_changing_identities_pile_up(
    broker: Mosquitto, sessions: BrokerSessions
) -> None:
    """The behaviour issue 25 reported (a day's expiry): one stale session per rollout."""
    pods = [f"reconciler-{uuid.uuid4().hex[:5]}-1" for _ in range(ROLLOUTS)]
    rollouts(broker, pods, mqtt_session_expiry_seconds=86400)
    kept = sessions.kept()
    assert kept == ROLLOUTS
    print(f"{ROLLOUTS} rollouts, new identity each, expiry 1 day: {kept} kept")


def test_mqtt_311_keeps_a_session_only_for_an_identity_that_comes_back(
    broker: Mosquitto, sessions: BrokerSessions
) -> None:
    """3.1.1 has no expiry: a client id derived from the default `<hostname>-<pid>` gets a
    clean session (nothing kept), a stable one its persistent session (one kept)."""
    rollouts(broker, [None] * ROLLOUTS, mqtt_protocol="3.1.1")
    assert sessions.kept() == 0
    received = rollouts(
        broker, ["reconciler-0"] * ROLLOUTS, mqtt_protocol="3.1.1", publish_between=True
    )
    assert sessions.kept() == 1
    assert all(recorder.events for recorder in received[1:])


def test_the_daemon_passes_its_session_expiry_to_the_broker(
    broker: Mosquitto,
    sessions: BrokerSessions,
    zk_hosts: str,
    pg_url: str,
    kube: Any,
    kube_namespace: str,
    tmp_path: Any,
) -> None:
    seed(pg_url, things=5, rules=1)
    policy = write_policy(tmp_path / "policy.yaml", kube_namespace, Thing={"initInstances": 1})
    settings = settings_for(
        zk_hosts, pg_url, kube, policy, mqtt=broker.url, mqtt_session_expiry_seconds=2
    )
    with running(settings):
        eventually(lambda: sessions.count("connected") == 2, timeout=15, what="the daemon")
    eventually(lambda: sessions.count("disconnected") == 1, timeout=5, what="its session kept")
    eventually(lambda: sessions.count("expired") == 1, timeout=10, what="its session expired")
    assert sessions.kept() == 0
