"""Scenarios 2 and 3: a row event -> the id readable in ZooKeeper by another client, and a
burst of single `c` messages.

An idle `reconciler run` process (10k Things, tick 60 s) subscribed to the rig's Mosquitto.
Each sample commits a new row, publishes its `c` on `cm/notify` (QoS 1) and times until the
bench's own kazoo client, through data watches on every Thing `resources` node, reads the id.
The baseline is the same daemon with MQTT off, converging by its tick alone.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass

import paho.mqtt.client as mqtt_client
from paho.mqtt.enums import CallbackAPIVersion

from bench.daemon import BenchDaemon, Scrape, daemon
from bench.world import Database, World, uuids
from bench.zkview import IdWatcher, assigned, connect
from tests.support.fleet import write_policy

IDLE_TICK = 60.0  # far off: every figure of ours is the event path, not the tick
TICK_ONLY = 5.0  # the baseline's tick
SPACING = (0.02, 0.05)  # seconds between samples: the daemon is idle at each publish


@dataclass(frozen=True)
class EventRun:
    latencies_ms: list[float]
    burst: int
    burst_s: float | None  # first publish (or commit, tick only) -> every id read
    publisher_rate: float | None  # the publisher's own msg/s, first publish -> last PUBACK
    publisher_written_rate: float | None  # first publish -> the last one written to the socket
    received: int | None  # row events the daemon counted during the burst
    watch_reads: int


def message(rid: str) -> str:
    return json.dumps({"o": "c", "t": "Thing", "k": {"id": rid}})


def _publisher(world: World) -> mqtt_client.Client:
    pub = mqtt_client.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-{uuid.uuid4().hex[:8]}")
    pub.connect(world.mq.host, world.mq.port)
    pub.loop_start()
    return pub


def _ready(d: BenchDaemon, kazoo_hosts: str, things: int, mqtt: bool, timeout: float) -> None:
    """Every Thing assigned, the pod creates of the first passes over (no operation for 3 s),
    and, with MQTT, the subscription acknowledged."""
    kazoo = connect(kazoo_hosts)
    try:
        deadline = time.monotonic() + timeout
        while assigned(kazoo, "Thing") != things:
            if time.monotonic() > deadline:
                raise TimeoutError("Things not all assigned")
            time.sleep(0.2)
    finally:
        kazoo.stop()
        kazoo.close()
    if mqtt:
        d.wait_scrape(lambda s: s.value("reconciler_source_up", source="mqtt") == 1, 60, "MQTT")
    prev = d.scrape()
    while True:
        time.sleep(3)
        s = d.scrape()
        if s.operations() == prev.operations() or time.monotonic() > deadline:
            return
        prev = s


def _samples(
    db: Database,
    watcher: IdWatcher,
    pub: mqtt_client.Client | None,
    n: int,
    spacing: tuple[float, float],
    timeout: float,
) -> list[float]:
    out = []
    for _ in range(n):
        rid = str(uuid.uuid4())
        watcher.expect([rid])
        db.insert("Thing", rid)  # committed first: the daemon checks events against the table
        start = time.monotonic()
        if pub is not None:
            pub.publish("cm/notify", message(rid), qos=1)
        seen = watcher.wait([rid], timeout)
        out.append((seen[rid] - start) * 1000)
        time.sleep(random.uniform(*spacing))
    return out


def _burst_from_another_process(world: World, ids: list[str]) -> dict[str, float]:
    """bench/publish.py in its own process; its report: the first publish (monotonic,
    comparable across processes on Linux), the last written and the last acknowledged."""
    out = subprocess.run(
        [sys.executable, "-m", "bench.publish", world.mq.host, str(world.mq.port), "--json"],
        input="\n".join(message(rid) for rid in ids),
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    return {k: float(v) for k, v in json.loads(out.stdout.strip().splitlines()[-1]).items()}


def mqtt_events_received(s: Scrape) -> float:
    """reconciler_events_received_total{source="mqtt"} of one scrape."""
    return s.value("reconciler_events_received_total", source="mqtt")


def event_run(
    world: World,
    db: Database,
    *,
    tag: str,
    mqtt: bool,
    samples: int,
    burst: int,
    timeout: float,
) -> EventRun:
    tick = IDLE_TICK if mqtt else TICK_ONLY
    # Tick only: arrivals at a random phase of the tick, so the baseline is the tick's
    # average wait and not its worst (a sample right after the previous pass waits a whole tick).
    spacing = SPACING if mqtt else (0.0, TICK_ONLY)
    with world.slot(tag) as slot:
        slot.work.mkdir(parents=True, exist_ok=True)
        policy = write_policy(slot.work / "policy.yaml", slot.namespace, tick=tick)
        with daemon(world, slot, db.url, policy, mqtt=mqtt) as d:
            _ready(d, slot.zk_hosts, db.count("Thing"), mqtt, timeout)
            watcher = IdWatcher(slot.zk_hosts)
            pub = _publisher(world) if mqtt else None
            try:
                _samples(db, watcher, pub, 1, spacing, timeout)  # warm-up, not counted
                lat = _samples(db, watcher, pub, samples, spacing, timeout)
                if pub is not None:
                    # One publisher at a time: the burst's own, in another process.
                    pub.loop_stop()
                    pub.disconnect()
                    pub = None
                burst_s = rate = written = received = None
                if burst:
                    ids = uuids(burst)
                    watcher.expect(ids)
                    db.copy("Thing", ids)
                    before = d.scrape()
                    if mqtt:
                        report = _burst_from_another_process(world, ids)
                        start, rate = report["first"], report["rate"]
                        written = burst / (report["sent"] - start)
                    else:
                        start = time.monotonic()
                    seen = watcher.wait(ids, timeout)
                    burst_s = max(seen.values()) - start
                    received = int(mqtt_events_received(d.scrape()) - mqtt_events_received(before))
                return EventRun(
                    lat, burst, burst_s, rate, written, received if mqtt else None, watcher.reads
                )
            finally:
                if pub is not None:
                    pub.loop_stop()
                    pub.disconnect()
                watcher.close()
