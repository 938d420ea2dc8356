"""The ZooKeeper layout of an assignment (docs/contracts.md "ZooKeeper layout"): paths, JSON,
validation.

```
<root>/<kind>/<instanceId>             {"used": <int>, "count": <int>}
<root>/<kind>/<instanceId>/tmp         no data; workers may put "status" under it (an
                                       ephemeral child there: the worker's session is alive)
<root>/<kind>/<instanceId>/_reload     {"times": <int>}
<root>/<kind>/<instanceId>/resources   {"ids": ["<id>", ...]}
```

Pure: no client and no I/O. `zookeeper.ZkStore` reads and writes the nodes and hands their
bytes to this module, which turns an `Instance` into node data and node data back into an
`Instance`, saying what is wrong with data it cannot take as written.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from typing import Any

from reconciler.domain.ids import EMPTY, SortedIds
from reconciler.domain.model import Instance, NodeVersions

CHILDREN = ("tmp", "_reload", "resources")

# Instance ids are written as str(int): "0", "1", ... A name like "01" or "-1" would not
# round-trip to the same path, so it is treated like any other foreign node and ignored.
_INSTANCE_NAME = re.compile(r"0|[1-9][0-9]*")


def node_path(
    root: str, kind: str, instance_id: int | None = None, child: str | None = None
) -> str:
    """`<root>/<kind>[/<instanceId>[/<child>]]`; ValueError for a kind that is no node name."""
    if not kind or "/" in kind:
        raise ValueError(f"invalid resource kind {kind!r}")
    path = f"{root}/{kind}"
    if instance_id is not None:
        path += f"/{int(instance_id)}"
    if child is not None:
        path += f"/{child}"
    return path


def parse_instance_name(name: str) -> int | None:
    """The instance id a child node of `<root>/<kind>` is named for; None: not an instance."""
    return int(name) if _INSTANCE_NAME.fullmatch(name) else None


def dumps(value: object) -> bytes:
    """Compact UTF-8 JSON, byte-identical to Node.js `JSON.stringify` for our shapes.

    The old orchestrator was Node.js and the workers parse what it wrote; `ensure_ascii`
    is off because JSON.stringify writes non-ASCII characters as raw UTF-8, not \\uXXXX.
    """
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _loads(raw: bytes) -> Any:
    return json.loads(raw.decode("utf-8"))


def _is_int(value: object) -> bool:
    # JSON true/false load as bool, which is an int subclass in Python: not a count.
    return isinstance(value, int) and not isinstance(value, bool)


def encode_instance(instance: Instance) -> tuple[bytes, dict[str, bytes | None]]:
    """The data of the instance node, and of each child in `CHILDREN` order.

    Stores exactly `instance.reload_times` (the planner bumps it). None: the child carries
    no data (`tmp`), so a node that exists is left as the workers have it.
    """
    node = dumps({"used": len(instance.ids), "count": instance.count})
    return node, {
        "tmp": None,
        "_reload": dumps({"times": instance.reload_times}),
        "resources": _encode_ids(instance.ids),
    }


# The bytes JSON escapes in a string: an id with none of them is written as it is.
_ESCAPED = bytes(range(0x20)) + b'"\\'


def _encode_ids(ids: Iterable[str]) -> bytes:
    """`dumps({"ids": [...]})` of an instance's ids (SortedIds: in order already), byte for
    byte. Ids that need no escaping (uuids, every id seen so far) are joined as they are,
    without the encoder's work per string: an instance is written on every row event that
    touches it (docs/benchmarks.md "Events at a million ids")."""
    ordered = list(ids)
    if not ordered:
        return b'{"ids":[]}'
    raw = '","'.join(ordered).encode("utf-8")
    separators = 2 * (len(ordered) - 1)  # the quotes of '","'
    if len(raw.translate(None, _ESCAPED)) != len(raw) - separators:
        return dumps({"ids": ordered})
    return b'{"ids":["' + raw + b'"]}'


def decode_instance(
    instance_id: int,
    head: bytes,
    resources: bytes | None,
    reload_: bytes | None,
    *,
    tmp_exists: bool,
    worker_session: bool = False,
    versions: NodeVersions | None = None,
) -> tuple[Instance, list[str]]:
    """The instance from its nodes' data (None: that child node is missing), and its problems.

    Whatever could be read is kept; any problem makes the instance `complete=False`, so the
    planner rewrites it instead of the whole read failing. `worker_session`: a worker holds an
    ephemeral node under `tmp` (see `is_worker_session`). `versions`: the nodes' versions
    as read, which a write of the instance must match (compare-and-set).
    """
    problems: list[str] = []
    head_data = _decode(head, "instance node", problems)
    res_data = _decode(resources, "resources", problems)
    reload_data = _decode(reload_, "_reload", problems)
    if not tmp_exists:
        problems.append("tmp missing")

    count = 0
    used: object = None
    if isinstance(head_data, dict) and _is_int(head_data.get("count")):
        count = head_data["count"]
        used = head_data.get("used")
    elif head_data is not None:
        problems.append(f"instance node has no integer count: {head_data!r}"[:160])

    ids = EMPTY
    raw_ids = res_data.get("ids") if isinstance(res_data, dict) else None
    if isinstance(raw_ids, list) and all(isinstance(x, str) for x in raw_ids):
        ids = SortedIds(raw_ids)
        if len(ids) != len(raw_ids):
            problems.append("resources has duplicate ids")
    elif res_data is not None:
        problems.append("resources has no list of string ids")

    times = 0
    if isinstance(reload_data, dict) and _is_int(reload_data.get("times")):
        times = reload_data["times"]
    elif reload_data is not None:
        problems.append("_reload has no integer times")

    if used is not None and used != len(ids) and not problems:
        # Workers may rely on "used"; a stale value is worth one rewrite.
        problems.append(f"used={used!r} but {len(ids)} ids")

    instance = Instance(
        instance_id=instance_id,
        ids=ids,
        count=count,
        reload_times=times,
        complete=not problems,
        worker_session=worker_session,
        versions=versions,
    )
    return instance, problems


def is_worker_area(parts: Sequence[str]) -> bool:
    """Whether the node at `parts` below the root is an instance's `tmp` (`<kind>/<id>/tmp`):
    the workers' own corner of the layout, where they may add (and remove) nodes. A node
    whose first part starts with `_` is the daemon's (`_leader`, `_scale`), never a kind."""
    return (
        len(parts) == 3
        and parts[2] == "tmp"
        and not parts[0].startswith("_")
        and parse_instance_name(parts[1]) is not None
    )


def is_worker_session(ephemeral_owners: list[int]) -> bool:
    """Whether `tmp`'s children (their stat's `ephemeralOwner`s) show a live worker session.

    A worker that keeps an EPHEMERAL node under `<id>/tmp` (e.g. `tmp/status`) is alive for as
    long as that node exists: ZooKeeper deletes it when the worker's session ends (Helix
    counts live instances the same way). A persistent child (owner 0) proves nothing."""
    return any(owner != 0 for owner in ephemeral_owners)


def _decode(raw: bytes | None, node: str, problems: list[str]) -> Any:
    """The JSON in `raw`, or None with the problem noted (missing node, not JSON)."""
    if raw is None:
        problems.append(f"{node} missing")
        return None
    try:
        return _loads(raw)
    except (UnicodeDecodeError, ValueError):
        problems.append(f"{node} not JSON: {raw[:80]!r}")
        return None
