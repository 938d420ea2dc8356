"""The churn's messages as bare ZooKeeper writes, with no daemon (bench/zkfloor.py): a process
of its own plays the schedule; for each message it rewrites the one `resources` node the
message changes (a `d`: the instance holding the id; a `c`: an instance with room) as the
contract's JSON, sent at once without waiting for earlier answers. Nothing else: no database
check, no plan, no instance node, no transaction, no fence.

stdin: the schedule, one message a line, `<op> <table> <id>`, as bench/churn_publish.py
takes it; message k is due at `--start + k / --rate`. It reads the layout (`<root>/<kind>/<i>/
resources`) itself before the first message is due. At the end, one JSON line on stdout:
per message `[id, op, table, time issued]` (time.monotonic()), the achieved rate, the worst
lateness and the p50/p99 of the server's answer times.

    python -m bench.zkfloor_write HOSTS --rate 500 --start <monotonic> --per-instance 5000 <sched
"""

from __future__ import annotations

import argparse
import bisect
import json
import statistics
import sys
import time
from typing import Any

from kazoo.client import KazooClient

from bench.paced import achieved, read_schedule, wait_until_due

ROOT = "/iota/orchestration"


def encode(ids: list[str]) -> bytes:
    """`{"ids": [...]}` for uuids (nothing to escape), as the daemon's encoder writes them."""
    return b'{"ids":["' + '","'.join(ids).encode() + b'"]}' if ids else b'{"ids":[]}'


def play(
    hosts: str, schedule: list[tuple[str, str, str]], rate: float, start: float, per: int
) -> dict[str, Any]:
    kazoo = KazooClient(hosts=hosts, timeout=10)
    kazoo.start(timeout=15)
    nodes: dict[str, list[str]] = {}  # path -> its ids, sorted
    where: dict[str, str] = {}  # id -> path
    room: dict[str, set[str]] = {}  # kind -> paths with fewer than `per` ids
    for kind in sorted({t for _, t, _ in schedule}):
        room[kind] = set()
        for i in sorted(kazoo.get_children(f"{ROOT}/{kind}"), key=int):
            path = f"{ROOT}/{kind}/{i}/resources"
            ids = sorted(json.loads(kazoo.get(path)[0])["ids"])
            nodes[path] = ids
            where.update(dict.fromkeys(ids, path))
            if len(ids) < per:
                room[kind].add(path)
    records: list[tuple[str, str, str, float]] = []
    answered: list[float] = []
    late = 0.0
    for k, (op, table, rid) in enumerate(schedule):
        due = wait_until_due(k, start, rate)
        if op == "d":
            path = where.pop(rid)
            ids = nodes[path]
            del ids[bisect.bisect_left(ids, rid)]
            room[table].add(path)
        else:
            path = min(room[table], key=lambda p: int(p.split("/")[-2]))
            ids = nodes[path]
            bisect.insort(ids, rid)
            where[rid] = path
            if len(ids) >= per:
                room[table].discard(path)
        at = time.monotonic()
        late = max(late, at - due)
        result = kazoo.set_async(path, encode(ids))
        result.rawlink(lambda _r, at=at: answered.append(time.monotonic() - at))
        records.append((rid, op, table, at))
    deadline = time.monotonic() + 120
    while len(answered) < len(records) and time.monotonic() < deadline:
        time.sleep(0.01)
    kazoo.stop()
    kazoo.close()
    _first, _last, rate_out = achieved([r[3] for r in records], start)
    ms = sorted(x * 1000 for x in answered)
    return {
        "records": records,
        "rate": rate_out,
        "late_s": late,
        "answer_p50_ms": statistics.median(ms) if ms else float("nan"),
        "answer_p99_ms": ms[int(0.99 * (len(ms) - 1))] if ms else float("nan"),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("hosts", help="ZooKeeper hosts, with the chroot")
    ap.add_argument("--rate", type=float, default=500.0, help="messages per second")
    ap.add_argument("--start", type=float, default=0.0, help="monotonic time of message 0")
    ap.add_argument("--per-instance", type=int, default=5000, help="resourcePerInstance")
    args = ap.parse_args(argv)
    schedule = read_schedule(sys.stdin)
    start = args.start or time.monotonic() + 0.5
    report = play(args.hosts, schedule, args.rate, start, args.per_instance)
    print(
        f"zk floor writer: {len(schedule):,} writes at {report['rate']:,.1f}/s, at worst "
        f"{report['late_s']:.3f} s behind, answers p50 {report['answer_p50_ms']:.1f} ms",
        file=sys.stderr,
    )
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
