"""Play a churn schedule as the platform does, from a process apart from the daemon and the bench:
for each message, commit the row's INSERT or DELETE in PostgreSQL, then publish its `c` or `d`
on `cm/notify` at QoS 1.

stdin: one message a line, `<op> <table> <id>` (op `c` or `d`). Message k is due at
`--start + k / --rate` (an absolute schedule, so a slow message does not push the rest back);
a message past due goes at once. At the end, one JSON line on stdout: per message
`[id, op, table, publish time]` (time.monotonic() just before publish(), comparable across
processes on Linux), the first and last publish, the achieved rate ((n - 1) / (last - first))
and the worst lateness against the schedule.

    python -m bench.churn_publish HOST PORT DB_URL --rate 500 --start <monotonic> < schedule
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid

import paho.mqtt.client as mqtt_client
import psycopg
from paho.mqtt.enums import CallbackAPIVersion

from bench.paced import achieved, read_schedule, wait_until_due

TOPIC = "cm/notify"
SQL = {
    "c": 'INSERT INTO "{t}" (id) VALUES (%s)',
    "d": 'DELETE FROM "{t}" WHERE id = %s',
}


def message(op: str, table: str, rid: str) -> str:
    """The platform's row notification (docs/contracts.md), key only."""
    return json.dumps({"o": op, "t": table, "k": {"id": rid}})


def play(
    host: str,
    port: int,
    db_url: str,
    schedule: list[tuple[str, str, str]],
    rate: float,
    start: float,
) -> dict[str, object]:
    # The rig's SQLAlchemy URL, as psycopg takes it (bench/world.py psycopg_url: not imported,
    # it would pull the daemon's packages into this process's start-up).
    conn = psycopg.connect(
        db_url.replace("postgresql+psycopg://", "postgresql://", 1), autocommit=True
    )
    client = mqtt_client.Client(
        CallbackAPIVersion.VERSION2, client_id=f"churn-{uuid.uuid4().hex[:8]}"
    )
    client.max_inflight_messages_set(0)  # no limit: see bench/publish.py INFLIGHT
    client.max_queued_messages_set(0)
    acked = 0

    def on_publish(*_: object) -> None:
        nonlocal acked
        acked += 1

    client.on_publish = on_publish
    client.connect(host, port)
    client.loop_start()  # a network thread reads the PUBACKs while we keep to the schedule
    deadline = time.monotonic() + 30
    while not client.is_connected():
        if time.monotonic() > deadline:
            raise TimeoutError("no CONNACK")
        time.sleep(0.01)
    records: list[tuple[str, str, str, float]] = []
    late = 0.0
    for k, (op, table, rid) in enumerate(schedule):
        due = wait_until_due(k, start, rate)
        conn.execute(SQL[op].format(t=table), (rid,))  # committed first, as the platform does
        at = time.monotonic()
        late = max(late, at - due)
        info = client.publish(TOPIC, message(op, table, rid), qos=1)
        if info.rc != mqtt_client.MQTT_ERR_SUCCESS:
            raise RuntimeError(f"publish failed: {mqtt_client.error_string(info.rc)}")
        records.append((rid, op, table, at))
    deadline = time.monotonic() + 60
    while acked < len(schedule) and time.monotonic() < deadline:
        time.sleep(0.01)
    client.loop_stop()
    client.disconnect()
    conn.close()
    first, last, rate_out = achieved([r[3] for r in records], start)
    return {
        "records": records,
        "first": first,
        "last": last,
        "rate": rate_out,
        "late_s": late,
        "acked": acked,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("host")
    ap.add_argument("port", type=int)
    ap.add_argument("db_url")
    ap.add_argument("--rate", type=float, default=500.0, help="messages per second")
    ap.add_argument("--start", type=float, default=0.0, help="monotonic time of message 0")
    args = ap.parse_args(argv)
    schedule = read_schedule(sys.stdin)
    start = args.start or time.monotonic() + 0.5  # connecting takes a moment
    report = play(args.host, args.port, args.db_url, schedule, args.rate, start)
    print(
        f"churn publisher: {len(schedule):,} messages at {report['rate']:,.1f} msg/s, "
        f"at worst {report['late_s']:.3f} s behind the schedule, {report['acked']} PUBACKs",
        file=sys.stderr,
    )
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
