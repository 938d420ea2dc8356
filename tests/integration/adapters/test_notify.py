"""NotifyListener against the rig's real Mosquitto (SPEC "Change notifications (MQTT)").

Every test uses its own topic and client id: sessions are persistent (clean_session=False),
so a shared topic would let one test's queued messages leak into the next.
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from reconciler.adapters.mqtt.notify import NotifyListener
from reconciler.domain.events import RowEvent
from tests.support.mqtt import TIMEOUT, Publisher, Recorder, wait_for


@pytest.fixture
def topic() -> str:
    return f"cm/notify/test-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def make_listener(
    mqtt: Any, topic: str, recorder: Recorder
) -> Iterator[Callable[..., NotifyListener]]:
    listeners: list[NotifyListener] = []
    client_id = f"reconciler-test-{uuid.uuid4().hex[:8]}"

    def make(**kwargs: Any) -> NotifyListener:
        args: dict[str, Any] = {
            "client_id": client_id,
            "topic": topic,
            "on_malformed": recorder.on_malformed,
            "reconnect_delay": 0.5,
        }
        args.update(kwargs)
        url = args.pop("url", mqtt.url)
        on_event = args.pop("on_event", recorder.on_event)
        listener = NotifyListener(url, on_event, **args)
        listeners.append(listener)
        return listener

    yield make
    for listener in listeners:
        listener.stop()


@pytest.fixture
def publisher(mqtt: Any, topic: str) -> Iterator[Publisher]:
    pub = Publisher(mqtt.host, mqtt.port, topic)
    yield pub
    pub.close()


def started(listener: NotifyListener) -> NotifyListener:
    listener.start()
    assert listener.wait_connected(TIMEOUT), "listener never connected"
    return listener


def test_each_spec_message_form_arrives_as_its_row_event(
    make_listener: Callable[..., NotifyListener], publisher: Publisher, recorder: Recorder
) -> None:
    started(make_listener())
    publisher.send({"o": "c", "t": "Thing", "k": {"id": "t1"}, "instance": {"id": "t1"}})
    publisher.send({"o": "bc", "t": "Thing", "keys": [{"id": "t2"}, {"id": "t3"}]})
    publisher.send({"o": "u", "t": "Thing", "k": {"id": "t1"}, "instance": {"id": "t1"}})
    publisher.send({"o": "bu", "t": "Thing", "where": {"id": ["t2"]}})
    publisher.send({"o": "truncate", "t": "Thing"})
    publisher.send({"o": "d", "t": "Thing", "k": {"id": "t1"}})
    publisher.send({"o": "bd", "t": "Rule", "where": {"id": "r1"}})
    publisher.send({"o": "bd", "t": "Thing", "where": {"id": ["t2", "t3"]}})
    publisher.send({"o": "c", "t": "DeviceMeta", "k": {"id": "m1"}})
    # Last, in order (QoS 1, one publisher, one topic): once it is in, every message before it
    # has been handled, so nothing extra (u/bu/other ops) can trickle in after the check.
    publisher.send({"o": "c", "t": "Thing", "k": {"id": "last"}})
    last = RowEvent("Thing", added=frozenset({"last"}))

    expected = [
        RowEvent("Thing", added=frozenset({"t1"})),
        RowEvent("Thing", added=frozenset({"t2", "t3"})),
        RowEvent("Thing", removed=frozenset({"t1"})),
        RowEvent("Rule", removed=frozenset({"r1"})),
        RowEvent("Thing", removed=frozenset({"t2", "t3"})),
        RowEvent("DeviceMeta", added=frozenset({"m1"})),  # the loop filters tables
        last,
    ]
    wait_for(lambda: last in recorder.events, what="the last message")
    assert recorder.events == expected
    assert recorder.malformed == []


def test_garbage_goes_to_on_malformed_and_the_listener_keeps_running(
    make_listener: Callable[..., NotifyListener], publisher: Publisher, recorder: Recorder
) -> None:
    listener = started(make_listener())
    garbage: list[bytes] = [
        b"",
        b"not json",
        b"\xff\xfe garbage",
        b"[1,2,3]",
        b'{"o": "c", "t": "Thing"}',  # c without k
        b'{"o": "bc", "t": "Thing", "keys": "t9"}',
        b"[" * 50_000,  # blows json's recursion limit
    ]
    for payload in garbage:
        publisher.send(payload)
    publisher.send({"o": "c", "t": "Thing", "k": {"id": "after-garbage"}})

    wait_for(lambda: len(recorder.events) == 1, what="the valid message after the garbage")
    assert recorder.events == [RowEvent("Thing", added=frozenset({"after-garbage"}))]
    assert [p for p, _ in recorder.malformed] == garbage
    assert all(reason for _, reason in recorder.malformed)
    assert listener.connected


def test_an_exception_in_on_event_does_not_stop_the_listener(
    make_listener: Callable[..., NotifyListener], publisher: Publisher, recorder: Recorder
) -> None:
    def flaky(event: RowEvent) -> None:
        if "boom" in event.added:
            raise RuntimeError("consumer bug")
        recorder.on_event(event)

    listener = started(make_listener(on_event=flaky))
    publisher.send({"o": "c", "t": "Thing", "k": {"id": "boom"}})
    publisher.send({"o": "c", "t": "Thing", "k": {"id": "fine"}})
    wait_for(lambda: len(recorder.events) == 1)
    assert recorder.events == [RowEvent("Thing", added=frozenset({"fine"}))]
    assert listener.connected


def test_messages_published_while_the_listener_is_stopped_arrive_after_restart(
    make_listener: Callable[..., NotifyListener], publisher: Publisher, recorder: Recorder
) -> None:
    """Same client id + clean_session=False: Mosquitto queues QoS-1 messages for us."""
    first = started(make_listener())
    first.stop()
    assert not first.connected

    ids = [f"queued-{i}" for i in range(50)]
    for i in ids:
        publisher.send({"o": "c", "t": "Thing", "k": {"id": i}})
    publisher.send({"o": "bd", "t": "Thing", "where": {"id": ids[:10]}})

    second = make_listener()  # a new process would do the same: same client id
    t0 = time.monotonic()
    started(second)
    took = wait_for(lambda: len(recorder.events) == 51, what="queued messages")
    print(
        f"\n{len(recorder.events)} queued events delivered "
        f"{time.monotonic() - t0:.3f}s after start ({took:.3f}s after the wait began)"
    )
    assert [e.added for e in recorder.events[:50]] == [frozenset({i}) for i in ids]
    assert recorder.events[50] == RowEvent("Thing", removed=frozenset(ids[:10]))


def test_listener_reconnects_and_resubscribes_after_a_broker_restart(
    mqtt: Any, make_listener: Callable[..., NotifyListener], recorder: Recorder, topic: str
) -> None:
    """Mosquitto here runs without persistence, so a restart forgets our session: the
    listener must subscribe again by itself. (Messages sent while the broker is down are
    never accepted by it; the tick's database read covers them.)"""
    listener = started(make_listener())
    mqtt.stop()
    wait_for(lambda: not listener.connected, what="the listener to notice the outage")
    t0 = time.monotonic()
    mqtt.start()  # returns once the broker accepts connections
    wait_for(lambda: listener.connected, what="reconnect")
    print(
        f"\nresubscribed {time.monotonic() - t0:.2f}s after the broker was started "
        f"(broker start-up included)"
    )

    pub = Publisher(mqtt.host, mqtt.port, topic)
    try:
        pub.send({"o": "c", "t": "Thing", "k": {"id": "after-restart"}})
        wait_for(lambda: len(recorder.events) == 1, what="a message after the restart")
    finally:
        pub.close()
    assert recorder.events == [RowEvent("Thing", added=frozenset({"after-restart"}))]


def test_listener_started_before_its_broker_connects_when_it_comes_up(
    mqtt: Any, make_listener: Callable[..., NotifyListener], recorder: Recorder, topic: str
) -> None:
    mqtt.stop()
    listener = make_listener()
    listener.start()  # must not raise
    time.sleep(1.0)  # under test: two reconnect delays, and no connection claimed meanwhile
    assert not listener.connected
    mqtt.start()
    wait_for(lambda: listener.connected, what="first connection")
    pub = Publisher(mqtt.host, mqtt.port, topic)
    try:
        pub.send({"o": "c", "t": "Thing", "k": {"id": "late"}})
        wait_for(lambda: len(recorder.events) == 1)
    finally:
        pub.close()


def test_the_first_reachable_broker_of_a_list_is_used(
    mqtt: Any,
    make_listener: Callable[..., NotifyListener],
    publisher: Publisher,
    recorder: Recorder,
) -> None:
    # Port 1 on localhost refuses connections: the listener must move on to the real broker.
    listener = started(make_listener(url=f"mqtt://127.0.0.1:1, {mqtt.url}"))
    assert listener.broker.port == mqtt.port
    publisher.send({"o": "c", "t": "Thing", "k": {"id": "x"}})
    wait_for(lambda: len(recorder.events) == 1)


# Publishes argv[4] single `c` messages at QoS 1 and waits for every PUBACK. A separate
# process, like the real database layer: in-process, publisher and listener share the GIL.
_BURST_PUBLISHER = """
import json, sys
import paho.mqtt.client as mqtt
host, port, topic, n = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="burst-publisher")
c.max_queued_messages_set(0)
c.connect(host, port)
c.loop_start()
infos = [c.publish(topic, json.dumps({"o": "c", "t": "Thing", "k": {"id": f"b{i}"}}), qos=1)
         for i in range(n)]
for info in infos:
    info.wait_for_publish(timeout=30)
c.disconnect()
c.loop_stop()
"""


def test_a_burst_of_5000_creates_from_another_process_all_arrive(
    mqtt: Any, make_listener: Callable[..., NotifyListener], topic: str, recorder: Recorder
) -> None:
    """Mosquitto drops QoS-1 messages for a subscriber that falls more than
    `max_queued_messages` (default 1000) behind, so this also checks that the listener keeps
    up with a burst: parsing happens on paho's thread and must stay cheap."""
    started(make_listener())
    n = 5000
    t0 = time.monotonic()
    subprocess.run(
        [sys.executable, "-c", _BURST_PUBLISHER, mqtt.host, str(mqtt.port), topic, str(n)],
        check=True,
        timeout=60,
    )
    try:
        wait_for(lambda: len(recorder.events) == n, timeout=30, what=f"{n} events")
    finally:
        took = time.monotonic() - t0
        print(
            f"\nburst: {len(recorder.events)}/{n} c messages received in {took:.2f}s "
            f"({len(recorder.events) / took:.0f}/s, incl. publisher start-up)"
        )
    assert {i for e in recorder.events for i in e.added} == {f"b{i}" for i in range(n)}
