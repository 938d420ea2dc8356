"""The policy is the whole truth, and sizing that does not flap (issue 27), on the rig.

- Removing `autoscale` from a kind the autoscaler grew brings back the size its rows give
  within two ticks; the layout is read (consistently, tests/chaos/invariants.py) after every
  ZooKeeper write of the move: no id is ever on two instances, and once each tick is done
  every id is on exactly one.
- The demo's sequence (Rule `initInstances` 10 -> 4, then rows trickling in with their
  cm/notify events), run by the daemon as `reconciler run` wires it: no instance is opened
  again and no pod deleted and created again (pods watched by uid from the apiserver).

Pod usage for the autoscaler comes from the PodMetrics CRD STAND-IN (rig/podmetrics_standin.py),
as in test_autoscale.py.
"""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s
from kubernetes import watch

from reconciler.adapters.sql.inventory import create_tables, insert_ids
from reconciler.domain.model import Instance
from reconciler.reconcile.autoscale import Autoscaler
from reconciler.runtime.loop import Wake, WakeReason
from reconciler.wiring import App
from rig import podmetrics_standin
from tests.chaos.invariants import read_layout as consistent_layout
from tests.integration.daemon.test_autoscale import AUTOSCALE, running, scale_up_to_ten, start_five
from tests.integration.daemon.test_events_e2e import Publisher
from tests.support.daemon import running as daemon_running
from tests.support.daemon import settings_for
from tests.support.fleet import Fleet, eventually, fleet, read_layout, uuids, write_policy

pytestmark = pytest.mark.integration


def figure(name: str, value: object) -> None:
    print(f"\nFIGURE {name}: {value}")  # quoted in the report; shown with -s


class EveryWriteSeen:
    """The real ZooKeeper store, with a consistent snapshot of the kind's layout read after
    each write and delete it commits: every state ZooKeeper passes through while the layout
    moves. Records ids seen on two instances at once, and the states in which some row had
    no instance (a moving id between the write that gives it and the one that takes it)."""

    def __init__(self, store: Any, kazoo: Any, kind: str, rows: set[str]) -> None:
        self.store, self.kazoo, self.kind, self.rows = store, kazoo, kind, rows
        self.states = 0
        self.doubles: list[str] = []
        self.unowned_states = 0
        self.sizes: list[int] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    def write_instance(self, kind: str, instance: Instance, **kw: Any) -> Instance:
        written = self.store.write_instance(kind, instance, **kw)
        self._look()
        return written

    def delete_instance(self, kind: str, instance_id: int, **kw: Any) -> None:
        self.store.delete_instance(kind, instance_id, **kw)
        self._look()

    def _look(self) -> None:
        layout = consistent_layout(self.kazoo, self.kind)
        owners = Counter(rid for inst in layout.values() for rid in inst.ids)
        self.states += 1
        self.doubles += [rid for rid, n in owners.items() if n > 1]
        self.unowned_states += not self.rows <= owners.keys()
        if not self.sizes or self.sizes[-1] != len(layout):
            self.sizes.append(len(layout))


def exactly_once(kazoo: Any, kind: str, rows: set[str]) -> dict[int, Any]:
    layout = consistent_layout(kazoo, kind)
    owners = Counter(rid for inst in layout.values() for rid in inst.ids)
    assert set(owners) == rows and set(owners.values()) == {1}
    assert all(len(inst.ids) <= inst.count for inst in layout.values())
    return layout


@pytest.fixture
def autoscaled(
    zk_hosts: str, pg_url: str, kube: Any, kube_namespace: str, tmp_path: Path
) -> Iterator[tuple[Fleet, str, Any, str, Path]]:
    api = kube.api_client()
    podmetrics_standin.install(api)  # idempotent; another test may have uninstalled it
    create_tables(pg_url)
    policy = write_policy(
        tmp_path / "policy.yaml",
        kube_namespace,
        Thing={"initInstances": 5, "maxInstances": 20, "autoscale": AUTOSCALE},
    )
    with fleet(zk_hosts, pg_url, api, policy) as f:
        f.ports.autoscaler = Autoscaler(f.pods)
        yield f, pg_url, api, kube_namespace, policy
    api.close()


def test_removing_autoscale_brings_back_the_row_based_count_within_two_ticks(
    autoscaled: tuple[Fleet, str, Any, str, Path], kazoo_client: Any
) -> None:
    f, db, api, ns, policy = autoscaled
    start_five(f, db, api, ns)  # 1000 Things: initInstances 5 is their row-based count
    scale_up_to_ten(f, api, ns, kazoo_client, cpu="250m", mem="128Mi")
    rows = {rid for inst in read_layout(kazoo_client, "Thing").values() for rid in inst["ids"]}
    assert len(rows) == 1000

    # The load stays high: only the policy edit can bring the count back.
    write_policy(policy, ns, Thing={"initInstances": 5, "maxInstances": 20})
    seen = EveryWriteSeen(f.ports.store, kazoo_client, "Thing", rows)
    f.ports.store = seen
    f.tick()
    exactly_once(kazoo_client, "Thing", rows)
    f.tick()
    layout = exactly_once(kazoo_client, "Thing", rows)
    assert sorted(layout) == list(range(5))
    assert {len(inst.ids) for inst in layout.values()} == {200}
    assert seen.states > 0 and seen.doubles == []
    assert seen.sizes[-1] == 5
    eventually(lambda: running(api, ns, 5 + 3))
    # And it stays there: the autoscaler forgot the kind, nothing asks for 10 any more.
    assert f.tick().plan.ops == ()
    assert f.ports.autoscaler is not None and "Thing" not in f.ports.autoscaler.decisions
    figure("autoscale removed: ZooKeeper states seen while 10 -> 5", seen.states)
    figure("states with a moving id between its two writes", seen.unowned_states)


# --- the demo's sequence, by the daemon itself -------------------------------------------

RULES = 1205  # the demo's count


class PodWatch:
    """The apiserver's pod events for one instance name, from a resourceVersion on, in a
    thread: (event type, pod name, uid)."""

    def __init__(self, core: k8s.CoreV1Api, ns: str, prefix: str, resource_version: str) -> None:
        self.core, self.ns, self.prefix, self.rv = core, ns, prefix, resource_version
        self.events: list[tuple[str, str, str]] = []
        self.error: Exception | None = None  # the watch ended before it was stopped
        self._stopping = threading.Event()
        self._watch = watch.Watch()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> PodWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopping.set()
        self._watch.stop()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        try:
            for event in self._watch.stream(
                self.core.list_namespaced_pod,
                self.ns,
                resource_version=self.rv,
                timeout_seconds=300,
            ):
                pod = event["object"]
                if pod.metadata.name.startswith(self.prefix):
                    self.events.append((event["type"], pod.metadata.name, pod.metadata.uid))
        except Exception as e:  # the stream cut by stop() ends it too: only an earlier end counts
            if not self._stopping.is_set():
                self.error = e


def assigned(kazoo: Any) -> set[str]:
    return {rid for inst in read_layout(kazoo, "Rule").values() for rid in inst["ids"]}


def rule_pods(core: k8s.CoreV1Api, ns: str) -> dict[str, str]:
    """Live (not terminating) rules-engine pods: name -> uid."""
    return {
        p.metadata.name: p.metadata.uid
        for p in core.list_namespaced_pod(ns).items
        if p.metadata.name.startswith("iota-rules-engine-")
        and p.metadata.deletion_timestamp is None
    }


def test_the_demos_scale_down_then_a_trickle_of_rows_reopens_no_instance(
    zk_hosts: str,
    pg_url: str,
    kube: Any,
    kube_namespace: str,
    mqtt: Any,
    kazoo_client: Any,
    tmp_path: Path,
) -> None:
    ns = kube_namespace
    create_tables(pg_url)
    insert_ids(pg_url, "Thing", uuids(10))
    insert_ids(pg_url, "Rule", uuids(RULES))
    policy = tmp_path / "policy.yaml"
    thing = {"initInstances": 3}
    write_policy(policy, ns, tick=60, Thing=thing, Rule={"initInstances": 10})
    settings = settings_for(zk_hosts, pg_url, kube, policy, mqtt=mqtt.url)
    core = k8s.CoreV1Api(kube.api_client())
    with daemon_running(settings) as daemon:
        app: App = daemon.app
        eventually(lambda: len(rule_pods(core, ns)) == 10, timeout=60)

        # The edit, as the demo made it; the daemon's file watch picks it up.
        write_policy(policy, ns, tick=60, Thing=thing, Rule={"initInstances": 4})
        eventually(lambda: sorted(read_layout(kazoo_client, "Rule")) == [0, 1, 2, 3], timeout=30)
        eventually(
            lambda: sorted(rule_pods(core, ns)) == [f"iota-rules-engine-{i}" for i in range(4)],
            timeout=60,  # the pods of 4..9 gone, not only terminating
        )
        counts = {inst["node"]["count"] for inst in read_layout(kazoo_client, "Rule").values()}
        kept = rule_pods(core, ns)
        rv = core.list_namespaced_pod(ns).metadata.resource_version

        # Rows trickle in with their events: 5, then 10 three times, each once the last is in.
        pub = Publisher(mqtt.host, mqtt.port)
        added: list[str] = []
        try:
            with PodWatch(core, ns, "iota-rules-engine-", rv) as pods:
                for n in (5, 10, 10, 10):
                    batch = [str(uuid.uuid4()) for _ in range(n)]
                    insert_ids(pg_url, "Rule", batch)
                    pub.send({"o": "bc", "t": "Rule", "keys": [{"id": rid} for rid in batch]})
                    added += batch
                    want = set(added)
                    eventually(lambda want=want: want <= assigned(kazoo_client), timeout=10)
                    assert sorted(read_layout(kazoo_client, "Rule")) == [0, 1, 2, 3]
                # The periodic pass too (without waiting 60 s for it): still nothing to open.
                passes = app.daemon.passes
                app.daemon.wake(Wake(WakeReason.TICK))
                eventually(lambda: app.daemon.passes > passes, timeout=10)
                assert sorted(read_layout(kazoo_client, "Rule")) == [0, 1, 2, 3]
        finally:
            pub.close()
        layout = read_layout(kazoo_client, "Rule")

    assert sorted(layout) == [0, 1, 2, 3]
    assert sum(len(i["ids"]) for i in layout.values()) == RULES + len(added)
    assert pods.error is None, pods.error
    opened = [(kind, name) for kind, name, _ in pods.events if kind == "ADDED"]
    gone = [(kind, name) for kind, name, _ in pods.events if kind == "DELETED"]
    assert opened == [] and gone == [], pods.events
    assert all(uid == kept[name] for _, name, uid in pods.events), pods.events
    assert counts == {(RULES + -(-RULES // 10)) // 4 + 1}  # 332: room for 123 more rows
    figure("demo: count after initInstances 10 -> 4 for 1,205 rules", counts)
    figure("demo: rows added after the scale-down without a new instance", len(added))
