"""The fleet's invariants, read straight from the servers: ZooKeeper with kazoo, the tables
with SQL, pods with the kubernetes client. Written apart from the planner on purpose: nothing
here imports reconciler/, so a bug shared by the planner and its own checks cannot hide.

- every database id is on exactly one instance, and no instance holds an id with no row;
- no instance holds more ids than its `count`, and `used` is the number of its ids;
- one pod per instance, and no pod `<instanceName>-<n>` without instance `n` (orphan);
- no pod deleted while the daemon was blind (`Deletions` + `BlindWindow`, podwatch.py).

`check` returns the violations as sentences; an empty list means the fleet is sound.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
import yaml
from kubernetes import client as k8s

ROOT = "/iota/orchestration"
SNAPSHOT_TRIES = 20  # a consistent ZooKeeper read needs a moment with no write in it


@dataclass(frozen=True)
class KindSpec:
    """What the checker needs of one kind, read from policy.yaml with plain YAML."""

    name: str
    table: str
    instance_name: str
    namespace: str


def kinds_of(policy_text: str) -> list[KindSpec]:
    doc = yaml.safe_load(policy_text)
    return [
        KindSpec(name, k["table"], k["instanceName"], k.get("namespace", "iota"))
        for name, k in doc["kinds"].items()
    ]


@dataclass(frozen=True)
class Instance:
    used: int
    count: int
    ids: tuple[str, ...]


def _read_kind(kazoo: Any, kind: str) -> tuple[dict[int, Instance], dict[str, int]]:
    """One read of a kind's layout, with the version of every node read (to compare)."""
    root = f"{ROOT}/{kind}"
    if kazoo.exists(root) is None:
        return {}, {}
    versions: dict[str, int] = {}
    children, stat = kazoo.get_children(root, include_data=True)
    versions[root] = stat.cversion
    out: dict[int, Instance] = {}
    for child in children:
        data, s1 = kazoo.get(f"{root}/{child}")
        res, s2 = kazoo.get(f"{root}/{child}/resources")
        versions[f"{root}/{child}"] = s1.mzxid
        versions[f"{root}/{child}/resources"] = s2.mzxid
        node = json.loads(data)
        out[int(child)] = Instance(node["used"], node["count"], tuple(json.loads(res)["ids"]))
    return out, versions


def read_layout(kazoo: Any, kind: str) -> dict[int, Instance]:
    """A consistent layout: read until two reads in a row saw the same node versions (no
    write landed in between), so a move between two instances is never half seen."""
    kazoo.sync(ROOT)
    _, versions = _read_kind(kazoo, kind)
    for _ in range(SNAPSHOT_TRIES):
        layout, again = _read_kind(kazoo, kind)
        if again == versions:
            return layout
        versions = again
        time.sleep(0.05)
    raise RuntimeError(f"{kind}: ZooKeeper never held still for a read")


def table_ids(engine: sa.Engine, table: str) -> set[str] | None:
    """The table's ids; None when the table does not exist (a kind with an unknown table)."""
    with engine.connect() as conn:
        exists = conn.execute(sa.text("SELECT to_regclass(:t)"), {"t": f'"{table}"'}).scalar()
        if exists is None:
            return None
        return {str(r[0]) for r in conn.execute(sa.text(f'SELECT id FROM "{table}"'))}


def live_pods(core: k8s.CoreV1Api, namespace: str) -> dict[str, str]:
    """name -> uid of the namespace's pods that are not being deleted."""
    return {
        p.metadata.name: p.metadata.uid
        for p in core.list_namespaced_pod(namespace, _request_timeout=10).items
        if p.metadata.deletion_timestamp is None
    }


def layout_violations(kind: str, layout: dict[int, Instance], rows: set[str] | None) -> list[str]:
    out: list[str] = []
    where: Counter[str] = Counter(rid for inst in layout.values() for rid in inst.ids)
    for rid, n in sorted(where.items()):
        if n > 1:
            on = sorted(i for i, inst in layout.items() if rid in inst.ids)
            out.append(f"{kind}: id {rid} is on {n} instances {on}")
    for i, inst in sorted(layout.items()):
        if len(inst.ids) > inst.count:
            out.append(f"{kind}/{i}: {len(inst.ids)} ids over its count {inst.count}")
        if inst.used != len(inst.ids):
            out.append(f"{kind}/{i}: used={inst.used} but it holds {len(inst.ids)} ids")
    if rows is not None:
        missing = rows - set(where)
        stale = set(where) - rows
        if missing:
            out.append(f"{kind}: {len(missing)} database ids on no instance, e.g. {min(missing)}")
        if stale:
            out.append(f"{kind}: {len(stale)} assigned ids with no row, e.g. {min(stale)}")
    return out


def pod_violations(spec: KindSpec, instances: set[int], pods: dict[str, str]) -> list[str]:
    pattern = re.compile(rf"^{re.escape(spec.instance_name)}-(\d+)$")
    have = {int(m.group(1)) for name in pods if (m := pattern.match(name))}
    out = [f"{spec.name}/{i}: no pod {spec.instance_name}-{i}" for i in sorted(instances - have)]
    out += [
        f"{spec.name}: orphan pod {spec.instance_name}-{i} (no instance {i})"
        for i in sorted(have - instances)
    ]
    return out


def check(kazoo: Any, engine: sa.Engine, core: k8s.CoreV1Api, kinds: list[KindSpec]) -> list[str]:
    """Every violation of the fleet's invariants now (see the module docstring)."""
    out: list[str] = []
    for spec in kinds:
        layout = read_layout(kazoo, spec.name)
        out += layout_violations(spec.name, layout, table_ids(engine, spec.table))
        out += pod_violations(spec, set(layout), live_pods(core, spec.namespace))
    return out
