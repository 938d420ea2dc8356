"""ZooKeeper as a witness of who wrote when: every write has a zxid, global and increasing, so
"no write under the daemons' root between two moments" is a question about zxids, asked of
the server rather than of a daemon's log (the split brain: tests/integration/daemon/
test_split_brain.py and the chaos run's `split_brain` fault)."""

from __future__ import annotations

import inspect
import time
from typing import Any

from reconciler.adapters.zookeeper.election import LEADER_NODE, ZkElection

ROOT = "/iota/orchestration"
# A leader's pod calls need a proof of leadership no older than this: from its end on, a leader
# cut from ZooKeeper makes none.
PROOF_SECONDS: float = inspect.signature(ZkElection).parameters["proof_seconds"].default
# A pod call sent just before the proof expired may land a little later (one apiserver round
# trip, a create's admission included).
IN_FLIGHT_SECONDS = 1.0
MARKER = "/zxid-marker"


def zxid_now(kazoo: Any) -> int:
    """The zxid of a write made now: a marker node of the test's own, outside `ROOT`."""
    kazoo.ensure_path(MARKER)
    return int(kazoo.set(MARKER, str(time.time()).encode()).mzxid)


def election_changed(kazoo: Any) -> int:
    """The zxid of the last change among the election's lock nodes (a candidate gone with its
    session, or one come)."""
    stat = kazoo.exists(f"{ROOT}/{LEADER_NODE}")
    return int(stat.pzxid) if stat is not None else 0


def writes_between(kazoo: Any, after: int, before: int) -> list[str]:
    """Nodes under `ROOT` (the election's node aside) created, changed or whose children
    changed by a write with a zxid strictly between `after` and `before`."""
    found: list[str] = []

    def walk(path: str) -> None:
        children, stat = kazoo.get_children(path, include_data=True)
        for what, zxid in (("czxid", stat.czxid), ("mzxid", stat.mzxid), ("pzxid", stat.pzxid)):
            if after < zxid < before:
                found.append(f"{path} {what}={zxid:#x}")
        for child in children:
            if child != LEADER_NODE:
                walk(f"{path}/{child}")

    if kazoo.exists(ROOT) is not None:
        walk(ROOT)
    return found
