"""Publish JSON lines from stdin to cm/notify at QoS 1, as a separate process, back to back.

The database layer publishes from its own process; a publisher inside the daemon's process
competes with paho's network threads there and measures the harness, not the daemon.

Every line is read before the first publish, and the client runs without a network thread:
each publish() writes to the socket at once, nothing waits for a PUBACK before the next
message (inflight window open, queue unbounded), and the PUBACKs are read at the end. The
publisher's own rate (first publish -> last PUBACK) is printed on stderr; `--json` also
prints it, with the first publish's monotonic time, as the last stdout line.

    python -m bench.publish HOST PORT [--json] < messages.jsonl
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid

import paho.mqtt.client as mqtt_client
from paho.mqtt.enums import CallbackAPIVersion

# 0 is paho's "no limit". Any positive limit, however high, makes paho scan every queued
# message on each PUBACK (Client._update_inflight): 5,000 messages then cost 3 s of CPU.
INFLIGHT = 0


def publish(host: str, port: int, lines: list[str], timeout: float = 120) -> dict[str, float]:
    client = mqtt_client.Client(
        CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:8]}"
    )
    client.max_inflight_messages_set(INFLIGHT)
    client.max_queued_messages_set(0)  # 0: unbounded
    acked = 0

    def on_publish(*_: object) -> None:
        nonlocal acked
        acked += 1

    client.on_publish = on_publish
    client.connect(host, port)
    deadline = time.monotonic() + timeout
    while not client.is_connected():
        client.loop(timeout=0.1)
        if time.monotonic() > deadline:
            raise TimeoutError("no CONNACK")
    first = time.monotonic()
    for line in lines:
        info = client.publish("cm/notify", line, qos=1)
        if info.rc != mqtt_client.MQTT_ERR_SUCCESS:
            raise RuntimeError(f"publish failed: {mqtt_client.error_string(info.rc)}")
    sent = time.monotonic()
    while acked < len(lines):
        client.loop(timeout=0.1)
        if time.monotonic() > deadline:
            raise TimeoutError(f"{acked} of {len(lines)} PUBACKs")
    done = time.monotonic()
    client.disconnect()
    rate = len(lines) / (done - first) if lines else 0.0
    return {"messages": len(lines), "first": first, "sent": sent, "acked": done, "rate": rate}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("host")
    ap.add_argument("port", type=int)
    ap.add_argument("--json", action="store_true", help="the report as the last stdout line")
    args = ap.parse_args(argv)
    lines = [s for s in (raw.strip() for raw in sys.stdin) if s]
    report = publish(args.host, args.port, lines)
    print(
        f"publisher: {report['messages']:,.0f} messages at QoS 1 in "
        f"{report['acked'] - report['first']:.3f} s, {report['rate']:,.0f} msg/s "
        f"(all written after {report['sent'] - report['first']:.3f} s)",
        file=sys.stderr,
    )
    if args.json:
        print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
