"""Never two owners (issue 12), proved on the rig (real ZooKeeper, PostgreSQL, apiserver):
a rescale killed between ANY two of its ZooKeeper writes leaves no id on two instances, and
one pass of a freshly started daemon puts every id on exactly one instance; a concurrent
writer's change is never overwritten (compare-and-set) and the next pass converges.

The kill is a fault injector around the real ZkStore: after k committed writes it aborts the
pass (a BaseException, which nothing in the pass catches), and the daemon's memory is thrown
away (a fresh Fleet and DaemonState), which is what a SIGKILL leaves: ZooKeeper holds exactly
the first k transactions. What ZooKeeper holds is checked with kazoo directly.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import threading
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from reconciler.adapters.sql.inventory import create_tables, delete_ids, insert_ids
from reconciler.adapters.zookeeper.store import ZkStore
from reconciler.domain.ids import SortedIds
from reconciler.domain.model import Assignment, Instance, NodeVersions
from tests.support.fleet import Fleet, eventually, fleet, read_layout, uuids, write_policy
from tests.support.processes import DaemonProcess

KIND = "Thing"
ROOT = f"/iota/orchestration/{KIND}"


class Killed(BaseException):
    """The daemon died here (SIGKILL): nothing in the pass may catch it."""


@dataclass
class KillAfterWrites:
    """FAULT INJECTOR: the real store, killed after `limit` committed writes (None: never).
    Counts the writes (transactions) it let through."""

    store: ZkStore
    limit: int | None = None
    done: int = 0
    log: list[str] = field(default_factory=list)

    def _gate(self, what: str) -> None:
        if self.limit is not None and self.done >= self.limit:
            raise Killed(f"killed before write {self.done + 1}: {what}")

    def read(self, kind: str) -> Assignment:
        return self.store.read(kind)

    def adopt(self, kind: str, ids: Mapping[int, SortedIds], rows: tuple[str, ...]) -> None:
        self.store.adopt(kind, ids, rows)  # no write: nothing to gate

    def write_instance(
        self, kind: str, instance: Instance, *, create: bool, count_only: bool = False
    ) -> Instance:
        self._gate(f"write {kind}/{instance.instance_id}")
        written = self.store.write_instance(kind, instance, create=create, count_only=count_only)
        self.done += 1
        self.log.append(f"write {instance.instance_id} ids={len(instance.ids)}")
        return written

    def delete_instance(
        self, kind: str, instance_id: int, *, versions: NodeVersions | None = None
    ) -> None:
        self._gate(f"delete {kind}/{instance_id}")
        self.store.delete_instance(kind, instance_id, versions=versions)
        self.done += 1
        self.log.append(f"delete {instance_id}")


@dataclass
class Rig:
    zk_hosts: str
    db: str
    kube: Any
    policy: Path
    kazoo: Any

    @property
    def api(self) -> Any:
        return self.kube.api_client()

    def daemon(self) -> Any:
        """A freshly started daemon's fleet: nothing remembered from an earlier one."""
        return fleet(self.zk_hosts, self.db, self.api, self.policy)


@pytest.fixture
def rig(
    zk_hosts: str, pg_url: str, kube: Any, kube_namespace: str, tmp_path: Path, kazoo_client: Any
) -> Iterator[Rig]:
    create_tables(pg_url)
    policy = write_policy(
        tmp_path / "policy.yaml",
        kube_namespace,
        Thing={"initInstances": 3, "maxInstances": 20, "resourcePerInstance": 5000},
    )
    yield Rig(zk_hosts, pg_url, kube, policy, kazoo_client)


def snapshot(kazoo: Any) -> list[tuple[str, bytes]]:
    """Every node under the kind, parents first, with its data."""
    out: list[tuple[str, bytes]] = []

    def walk(path: str) -> None:
        out.append((path, kazoo.get(path)[0]))
        for child in sorted(kazoo.get_children(path)):
            walk(f"{path}/{child}")

    walk(ROOT)
    return out


def restore(kazoo: Any, nodes: list[tuple[str, bytes]]) -> None:
    kazoo.delete(ROOT, recursive=True)
    for path, data in nodes:
        kazoo.create(path, data)


def owners(kazoo: Any) -> Counter[str]:
    return Counter(rid for inst in read_layout(kazoo, KIND).values() for rid in inst["ids"])


def assert_every_row_once(kazoo: Any, rows: set[str]) -> None:
    layout = read_layout(kazoo, KIND)
    seen = Counter(rid for inst in layout.values() for rid in inst["ids"])
    assert [rid for rid, n in seen.items() if n > 1] == []
    assert set(seen) == rows
    for inst in layout.values():
        assert inst["node"] == {"used": len(inst["ids"]), "count": inst["node"]["count"]}
        assert inst["node"]["used"] <= inst["node"]["count"]


def rescale(f: Fleet, per: int) -> Any:
    """An operator's orchestrate to a new resourcePerInstance (REST), one pass of Thing."""
    f.loaded()  # a fresh daemon's policy first: accepting one clears REST overrides
    f.state.request_rebalance(KIND, {"resourcePerInstance": per})
    return f.run(kinds=[KIND])


def kill_at_every_write(rig: Rig, per: int, rows: set[str]) -> tuple[int, list[str]]:
    """Replay the rescale from the same layout, killed after k writes for every k; returns
    the number of writes the whole rescale makes and what they were."""
    start = snapshot(rig.kazoo)
    with rig.daemon() as f:
        counter = KillAfterWrites(f.zk)
        f.ports.store = counter
        assert not rescale(f, per).failed
    n, writes = counter.done, counter.log
    assert_every_row_once(rig.kazoo, rows)
    for k in range(n + 1):
        restore(rig.kazoo, start)
        with rig.daemon() as f:
            f.ports.store = KillAfterWrites(f.zk, limit=k)
            if k < n:
                with pytest.raises(Killed):
                    rescale(f, per)
            else:
                rescale(f, per)
        twice = [rid for rid, c in owners(rig.kazoo).items() if c > 1]
        assert twice == [], f"killed after {k}/{n} writes ({writes[:k]}): {len(twice)} ids twice"
        with rig.daemon() as restarted:  # a fresh daemon: one full pass
            result = restarted.run(kinds=[KIND])
            assert not result.failed, [o.error for o in result.failed]
        assert_every_row_once(rig.kazoo, rows)
    return n, writes


def test_a_scale_up_killed_between_any_two_writes_never_leaves_an_id_on_two_instances(
    rig: Rig,
) -> None:
    things = uuids(600)
    insert_ids(rig.db, KIND, things)
    with rig.daemon() as f:
        f.tick(kinds=[KIND])  # 3 instances of 200
    assert len(read_layout(rig.kazoo, KIND)) == 3
    delete_ids(rig.db, KIND, things[:60])  # rows go meanwhile: the givers shrink further
    rows = set(things[60:])

    n, writes = kill_at_every_write(rig, per=100, rows=rows)  # 540 rows -> 6 instances

    print(f"\nscale-up 3 -> 6: {n} writes, killed after each of 0..{n}: {writes}")
    assert n == 6 and len(read_layout(rig.kazoo, KIND)) == 6, writes


def test_a_scale_down_killed_between_any_two_writes_never_leaves_an_id_on_two_instances(
    rig: Rig,
) -> None:
    things = uuids(650)
    insert_ids(rig.db, KIND, things)
    with rig.daemon() as f:
        f.tick(kinds=[KIND])
        assert not rescale(f, 100).failed  # 7 instances of up to 100
    assert len(read_layout(rig.kazoo, KIND)) == 7
    more = uuids(40)
    insert_ids(rig.db, KIND, more)  # and rows come meanwhile: the receivers grow more
    rows = set(things) | set(more)

    n, writes = kill_at_every_write(rig, per=5000, rows=rows)  # back to 3 instances

    print(f"\nscale-down 7 -> 3: {n} writes, killed after each of 0..{n}: {writes}")
    assert sum(w.startswith("delete") for w in writes) == 4
    assert len(read_layout(rig.kazoo, KIND)) == 3


def test_a_concurrent_writer_between_read_and_write_is_not_overwritten_and_the_next_pass_converges(
    rig: Rig,
) -> None:
    things = uuids(300)
    insert_ids(rig.db, KIND, things)
    with rig.daemon() as f:
        f.tick(kinds=[KIND])
        before = read_layout(rig.kazoo, KIND)

        class Interloper:
            """The real store; right after the pass reads, another writer bumps every
            instance's _reload (with kazoo, as the old orchestrator or a second daemon would)."""

            def __init__(self, store: ZkStore) -> None:
                self.store = store

            def read(self, kind: str) -> Assignment:
                got = self.store.read(kind)
                for i in got:
                    rig.kazoo.set(f"{ROOT}/{i}/_reload", json.dumps({"times": 100 + i}).encode())
                return got

            def __getattr__(self, name: str) -> Any:
                return getattr(self.store, name)

        f.ports.store = Interloper(f.zk)  # type: ignore[assignment]
        result = rescale(f, 50)  # 300 rows -> 7 instances: 0, 1 and 2 are written
        conflicts = [o for o in result.outcomes if o.result == "failed"]
        assert conflicts and all("Conflict" in (o.error or "") for o in conflicts)
        assert not any(
            o.result == "ok" and o.op.key in {f"zk:{KIND}/{i}" for i in before}
            for o in result.outcomes
        )
        layout = read_layout(rig.kazoo, KIND)
        for i in before:  # nothing overwritten: their _reload, our old ids
            assert layout[i]["times"] == 100 + i
            assert layout[i]["ids"] == before[i]["ids"]
        assert [rid for rid, c in owners(rig.kazoo).items() if c > 1] == []

        f.ports.store = f.zk
        # Past the failed writes' first backoff (1 s): the pass's clock is moved on, not waited.
        mono = f.ports.mono
        f.ports.mono = lambda: mono() + 1.1
        again = f.run(kinds=[KIND])  # reads ZooKeeper again, plans on their versions
        assert not again.failed, [o.error for o in again.failed]
    assert_every_row_once(rig.kazoo, set(things))
    after = read_layout(rig.kazoo, KIND)
    assert len(after) == 7
    assert all(after[i]["times"] > 100 + i for i in before)  # their bump, then ours


class KillOnZooKeeperChanges:
    """FAULT INJECTOR for a real process: SIGKILLs it from kazoo's watch thread once
    ZooKeeper has notified `target` changes of the kind's instances (a write sets the
    instance node, a create or delete changes the kind's children), a few milliseconds
    after the write, while the rest of the pass is under way."""

    def __init__(self, kazoo: Any, pid: int, target: int) -> None:
        self.pid, self.target, self.seen, self.fired = pid, target, 0, False
        self.lock = threading.Lock()
        self.first: set[str] = set()
        for child in kazoo.get_children(ROOT):
            kazoo.DataWatch(f"{ROOT}/{child}", self._watch(f"data {child}"))
        kazoo.ChildrenWatch(ROOT, self._watch("children"), send_event=True)

    def _watch(self, name: str) -> Any:
        def changed(*_args: Any) -> bool:
            with self.lock:
                if name not in self.first:  # the call that registers the watch
                    self.first.add(name)
                    return not self.fired
                self.seen += 1
                if not self.fired and self.seen >= self.target:
                    self.fired = True
                    os.kill(self.pid, signal.SIGKILL)
                return not self.fired

        return changed


def test_a_real_daemon_sigkilled_at_random_points_of_rescales_never_leaves_an_id_twice(
    rig: Rig, tmp_path: Path, kube_namespace: str
) -> None:
    """`reconciler run` processes, SIGKILLed by a fault injector after a random number of
    the ZooKeeper changes of a rescale: after each kill kazoo finds no id on two instances,
    and a freshly started daemon puts every row on exactly one instance."""
    rng = random.Random(12)
    things = uuids(1000)
    insert_ids(rig.db, KIND, things)
    rows = set(things)
    policy = rig.policy

    def start(name: str) -> DaemonProcess:
        return DaemonProcess(
            tmp_path, rig.zk_hosts, rig.db, rig.kube, policy, name, session_timeout=2.0
        )

    daemon = start("d0")
    kills: list[str] = []
    try:
        eventually(lambda: set(owners(rig.kazoo)) == rows, timeout=60)
        # Up to 11 instances and back to 3, to 7 and back...: at most 8 pod deletes a pass,
        # under the safety valve's 10.
        for round_, per in enumerate([100, 5000, 150, 5000, 100, 5000]):
            eventually(lambda d=daemon: d.role() == "leader", timeout=30)
            before = len(read_layout(rig.kazoo, KIND))
            # Notified changes a rescale makes at least: up, a write of each of the `before`
            # instances and a create; down, an emptying write, a delete per removed instance.
            most = before + 1 if per < 1000 else 2 * (before - 3)
            injector = KillOnZooKeeperChanges(rig.kazoo, daemon.proc.pid, rng.randint(1, most))
            write_policy(
                policy,
                kube_namespace,
                Thing={"initInstances": 3, "maxInstances": 30, "resourcePerInstance": per},
            )
            try:
                daemon.proc.wait(timeout=60)  # killed
            except subprocess.TimeoutExpired:
                pytest.fail(f"round {round_}: not killed; {injector.seen} of {injector.target}")
            twice = [rid for rid, c in owners(rig.kazoo).items() if c > 1]
            kills.append(
                f"{before}->{len(read_layout(rig.kazoo, KIND))} instances after "
                f"{injector.seen} changes (aimed at {injector.target})"
            )
            assert twice == [], f"round {round_}: {len(twice)} ids on two instances"
            daemon.close()
            daemon = start(f"d{round_ + 1}")
            eventually(lambda: set(owners(rig.kazoo)) == rows, timeout=60)
            assert_every_row_once(rig.kazoo, rows)
    finally:
        daemon.close()
    print("\nSIGKILLs: " + "; ".join(kills))
