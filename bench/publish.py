"""Publish JSON lines from stdin to cm/notify at QoS 1, as a separate process.

The database layer publishes from its own process; a publisher inside the daemon's process
competes with paho's network threads there and measures the harness, not the daemon.

    python -m bench.publish HOST PORT < messages.jsonl
"""

from __future__ import annotations

import sys
import uuid

import paho.mqtt.client as mqtt_client
from paho.mqtt.enums import CallbackAPIVersion


def main() -> int:
    host, port = sys.argv[1], int(sys.argv[2])
    client = mqtt_client.Client(
        CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:8]}"
    )
    client.connect(host, port)
    client.loop_start()
    last = None
    for line in sys.stdin:
        if line.strip():
            last = client.publish("cm/notify", line.strip(), qos=1)
    if last is not None:
        last.wait_for_publish(timeout=120)
    client.loop_stop()
    client.disconnect()
    return 0


if __name__ == "__main__":
    sys.exit(main())
