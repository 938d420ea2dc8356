"""An MQTT publisher and a recorder of row events, for the tests of the cm/notify listener."""

from __future__ import annotations

import functools
import json
import threading
import uuid
from typing import Any

import paho.mqtt.client as mqtt

from reconciler.domain.events import RowEvent
from tests.support.polling import seconds_until

TIMEOUT = 15.0


# wait_for(cond, timeout=TIMEOUT, what="") -> the seconds until cond() held, polled every 20 ms.
wait_for = functools.partial(seconds_until, timeout=TIMEOUT, interval=0.02)


class Recorder:
    """Collects what the listener hands over (on paho's thread)."""

    def __init__(self) -> None:
        self.events: list[RowEvent] = []
        self.malformed: list[tuple[bytes, str]] = []
        self._lock = threading.Lock()

    def on_event(self, event: RowEvent) -> None:
        with self._lock:
            self.events.append(event)

    def on_malformed(self, payload: bytes, reason: str) -> None:
        with self._lock:
            self.malformed.append((payload, reason))


class Publisher:
    """A QoS-1 publisher that waits for each PUBACK, so "published" means "the broker has it"."""

    def __init__(self, host: str, port: int, topic: str) -> None:
        self.topic = topic
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:8]}"
        )
        self.client.connect(host, port, keepalive=10)
        self.client.loop_start()

    def send(self, payload: bytes | str | dict[str, Any]) -> None:
        if isinstance(payload, dict):
            payload = json.dumps(payload)
        info = self.client.publish(self.topic, payload, qos=1)
        info.wait_for_publish(timeout=5)
        assert info.is_published()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
