"""Forged and oversized `cm/notify` messages against a real daemon process on the rig
(Mosquitto, PostgreSQL, ZooKeeper, apiserver+kwok): the database, not the message, decides
what is assigned, oversized messages are refused and counted, and a flood leaves the
daemon's memory where it was."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt_client
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from reconciler.adapters.sql.inventory import insert_ids
from tests.support.fleet import eventually, read_layout, seed, write_policy
from tests.support.processes import DaemonProcess

MAX_BYTES = 1_000_000
MAX_IDS = 5_000


class Publisher:
    """QoS-1 publisher to cm/notify that waits for each PUBACK."""

    def __init__(self, host: str, port: int) -> None:
        self.client = mqtt_client.Client(
            CallbackAPIVersion.VERSION2, client_id=f"forger-{uuid.uuid4()}"
        )
        self.client.connect(host, port)
        self.client.loop_start()

    def send(self, payload: dict[str, Any] | bytes) -> None:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.client.publish("cm/notify", data, qos=1).wait_for_publish(timeout=10)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture
def daemon(
    tmp_path: Path, zk_hosts: str, pg_url: str, kube: Any, kube_namespace: str, mqtt: Any
) -> Iterator[tuple[DaemonProcess, str]]:
    seed(pg_url, things=600, rules=10)
    policy = write_policy(
        tmp_path / "policy.yaml", kube_namespace, Thing={"initInstances": 3}, Rule={}
    )
    d = DaemonProcess(
        tmp_path,
        zk_hosts,
        pg_url,
        kube,
        policy,
        "forged",
        env={
            "RECONCILER_MQTT_BROKERS": mqtt.url,
            "RECONCILER_MQTT_MAX_MESSAGE_BYTES": str(MAX_BYTES),
            "RECONCILER_MQTT_MAX_IDS": str(MAX_IDS),
        },
    )
    try:
        eventually(lambda: (d.status() or {}).get("kinds"), timeout=60, what="daemon up")
        yield d, pg_url
    finally:
        d.close()


def assigned(kazoo: Any, kind: str = "Thing") -> list[str]:
    """Every id the layout serves, with repeats (an id on two instances shows twice)."""
    return [i for inst in read_layout(kazoo, kind).values() for i in inst["ids"]]


def rejected(d: DaemonProcess) -> dict[str, float]:
    text = httpx.get(f"http://127.0.0.1:{d.port}/metrics", timeout=5).text
    pattern = r'reconciler_events_rejected_total\{reason="([a-z-]+)",source="mqtt"\} (\S+)'
    return {reason: float(value) for reason, value in re.findall(pattern, text)}


def rss_kib(d: DaemonProcess) -> int:
    for line in Path(f"/proc/{d.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def barrier(pub: Publisher, db: str, kazoo: Any) -> str:
    """A real create, sent after everything before it: once it is served, the messages
    published earlier (same client, QoS 1, in order) have been read and acted on."""
    rid = str(uuid.uuid4())
    insert_ids(db, "Thing", [rid])
    pub.send({"o": "c", "t": "Thing", "k": {"id": rid}})
    eventually(lambda: rid in assigned(kazoo), timeout=20, what="the barrier id served")
    return rid


def test_forged_creates_assign_nothing_and_forged_deletes_remove_nothing(
    daemon: tuple[DaemonProcess, str], mqtt: Any, kazoo_client: Any
) -> None:
    d, db = daemon
    eventually(lambda: len(assigned(kazoo_client)) == 600, timeout=60)
    held = sorted(assigned(kazoo_client))
    forged = [str(uuid.uuid4()) for _ in range(2000)]
    pub = Publisher(mqtt.host, mqtt.port)
    try:
        pub.send({"o": "bc", "t": "Thing", "keys": [{"id": i} for i in forged]})
        pub.send({"o": "c", "t": "Thing", "k": {"id": str(uuid.uuid4())}})
        pub.send({"o": "bd", "t": "Thing", "where": {"id": held}})  # every id it serves
        pub.send({"o": "d", "t": "Thing", "k": {"id": held[0]}})
        real = barrier(pub, db, kazoo_client)
    finally:
        pub.close()
    served = assigned(kazoo_client)
    assert sorted(served) == sorted([*held, real])  # none forged, none lost, none twice
    counts = rejected(d)
    assert counts["not-in-table"] >= 2001
    assert counts["still-in-table"] >= 600


def flood(pub: Publisher, messages: int) -> None:
    """Forged bulks of 3,000 ids (~150 KB each)."""
    for _ in range(messages):
        keys = [{"id": str(uuid.uuid4())} for _ in range(3000)]
        pub.send({"o": "bc", "t": "Thing", "keys": keys})


def test_oversized_messages_are_refused_and_a_flood_leaves_memory_flat(
    daemon: tuple[DaemonProcess, str], mqtt: Any, kazoo_client: Any
) -> None:
    d, db = daemon
    eventually(lambda: len(assigned(kazoo_client)) == 600, timeout=60)
    pub = Publisher(mqtt.host, mqtt.port)
    try:
        pub.send(b'{"o":"bc","t":"Thing","keys":[' + b" " * MAX_BYTES + b"]}")
        pub.send({"o": "bc", "t": "Thing", "keys": [{"id": str(i)} for i in range(MAX_IDS + 1)]})
        # A first flood brings the daemon to its high-water mark (the bounded hints, the
        # allocator's arenas); a flood three times as large must then not move it.
        flood(pub, 100)
        barrier(pub, db, kazoo_client)
        before = rss_kib(d)
        flood(pub, 300)
        real = barrier(pub, db, kazoo_client)
        after = rss_kib(d)
    finally:
        pub.close()
    counts = rejected(d)
    assert counts["too-large"] == 1 and counts["too-many-ids"] == 1
    # Each forged id was either looked up and refused, or dropped unread with the hints
    # waiting beyond the daemon's bound (for a full re-read instead).
    assert counts["not-in-table"] >= 3000
    assert counts["not-in-table"] >= 400 * 3000 or counts["overflow"] >= 1
    assert len(assigned(kazoo_client)) == 602 and real in assigned(kazoo_client)
    grew_mib = (after - before) / 1024
    print(f"daemon RSS {before / 1024:.0f} MiB -> {after / 1024:.0f} MiB after a 45 MB flood")
    # Holding the flood's 900,000 ids would take well over 100 MiB; bounded, the daemon
    # wanders around its high-water mark (measured: -2 .. +12 MiB between floods).
    assert grew_mib < 30, f"RSS grew {grew_mib:.0f} MiB under a 45 MB flood"
