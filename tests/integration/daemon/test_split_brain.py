"""Split brain with real `reconciler run` processes: the leader's ZooKeeper traffic black-holed
by a fault proxy (tests/support/netproxy.py) while it still reaches the apiserver and the
database, a standby connected to ZooKeeper directly.

The old leader keeps its pod calls gated by a proof of leadership no older than
`proof_seconds` (reconciler/adapters/zookeeper/election.py) and its ZooKeeper writes fenced by
its lock node, so from the end of its proof window on it must make no ZooKeeper write and no
pod call; the standby takes over once the old session expires and heals what happened
meanwhile; after the partition heals, the old leader stays a standby. Witnesses of our own,
not the daemons' word: the pods' watch (who created what, and when) and ZooKeeper's zxids.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s
from kubernetes import watch

from reconciler.adapters.sql.inventory import insert_ids
from reconciler.domain.podspec import CREATED_BY_ANNOTATION
from tests.support.fleet import eventually, read_layout, seed, uuids, write_policy
from tests.support.netproxy import FaultProxy
from tests.support.processes import DaemonProcess, leaders, wait_for_leader
from tests.support.zk_witness import (
    IN_FLIGHT_SECONDS,
    PROOF_SECONDS,
    election_changed,
    writes_between,
    zxid_now,
)

SESSION = 6.0  # RECONCILER_ZK_SESSION_TIMEOUT of both daemons


@dataclass(frozen=True)
class PodEvent:
    at: float  # time.time() when the watch delivered it
    kind: str  # ADDED, MODIFIED, DELETED
    name: str
    created_by: str | None


class PodWatch:
    """Every pod event of `namespace`, as the admin's watch delivers it."""

    def __init__(self, kube: Any, namespace: str) -> None:
        self.api = kube.api_client()
        self.namespace = namespace
        self.events: list[PodEvent] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="pod-watch")
        self._thread.start()

    def _record(self, kind: str, pod: Any) -> None:
        annotations = pod.metadata.annotations or {}
        self.events.append(
            PodEvent(time.time(), kind, pod.metadata.name, annotations.get(CREATED_BY_ANNOTATION))
        )

    def _run(self) -> None:
        core = k8s.CoreV1Api(self.api)
        listing = core.list_namespaced_pod(self.namespace)
        for pod in listing.items:
            self._record("ADDED", pod)
        # Each stream goes on from the last version seen: a new one replays nothing.
        version = listing.metadata.resource_version
        while not self._stop.is_set():
            stream = watch.Watch().stream(
                core.list_namespaced_pod,
                self.namespace,
                resource_version=version,
                timeout_seconds=1,
            )
            for event in stream:
                version = event["object"].metadata.resource_version
                self._record(event["type"], event["object"])

    def added_after(self, at: float) -> list[PodEvent]:
        return [e for e in self.events if e.kind == "ADDED" and e.at > at]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self.api.close()


@pytest.fixture
def pods(kube: Any, kube_namespace: str) -> Iterator[PodWatch]:
    watcher = PodWatch(kube, kube_namespace)
    yield watcher
    watcher.close()


@pytest.fixture
def daemons(
    tmp_path: Path, zk_hosts: str, pg_url: str, kube: Any, kube_namespace: str
) -> Iterator[tuple[DaemonProcess, DaemonProcess, FaultProxy]]:
    """The leader `old` (ZooKeeper through a proxy) and the standby `new` (direct)."""
    seed(pg_url, things=300, rules=40)
    policy = write_policy(
        tmp_path / "policy.yaml",
        kube_namespace,
        tick=1,
        Thing={"initInstances": 3, "maxInstances": 10, "resourcePerInstance": 150},
        Rule={"initInstances": 3, "maxInstances": 10},
    )
    host, chroot = zk_hosts.split("/", 1)
    zk_port = int(host.rsplit(":", 1)[1])
    proxy = FaultProxy(("127.0.0.1", zk_port), name="zk-link")
    started: list[DaemonProcess] = []
    try:
        old = DaemonProcess(
            tmp_path, f"{proxy.address}/{chroot}", pg_url, kube, policy, "old",
            session_timeout=SESSION,
        )  # fmt: skip
        started.append(old)
        assert wait_for_leader([old]) is old
        new = DaemonProcess(
            tmp_path, zk_hosts, pg_url, kube, policy, "new", session_timeout=SESSION
        )
        started.append(new)
        eventually(lambda: new.role() == "standby", timeout=60)
        yield old, new, proxy
    finally:
        for d in started:
            d.close()
        proxy.close()


def test_split_brain_the_partitioned_leader_stops_acting_and_the_standby_heals(
    pods: PodWatch,
    daemons: tuple[DaemonProcess, DaemonProcess, FaultProxy],
    pg_url: str,
    kazoo_client: Any,
    kube: Any,
    kube_namespace: str,
) -> None:
    old, new, proxy = daemons
    eventually(lambda: len(read_layout(kazoo_client, "Thing")) >= 2, timeout=60)
    eventually(lambda: (s := old.status()) and s["lastPass"]["ops"] == 0, timeout=60)

    proxy.black_hole()
    cut = time.time()
    # Work the old leader would do if it still acted: rows for a new instance (ZooKeeper
    # writes, then a pod create).
    insert_ids(pg_url, "Thing", uuids(200))
    proof_end = cut + PROOF_SECONDS + IN_FLIGHT_SECONDS
    while time.time() < proof_end:  # the window under test: the old leader's proof
        time.sleep(0.05)
    after_proof = zxid_now(kazoo_client)
    # ... and a pod to replace, gone after its proof expired.
    with kube.api_client() as api:
        k8s.CoreV1Api(api).delete_namespaced_pod(
            "iota-dac-0", kube_namespace, grace_period_seconds=0
        )
    deleted = time.time()

    # kazoo suspends a connection that has heard nothing for two thirds of the session (plus
    # a poll): from then on the cut-off leader must not even say it leads.
    suspended = cut + SESSION * 2 / 3 + 1.0
    claims: list[float] = []  # moments after that the cut-off leader still said it led

    def standby_leads() -> float | None:
        if old.role() == "leader" and time.time() > suspended:
            claims.append(time.time())
        return time.time() if new.role() == "leader" else None

    took_over = eventually(standby_leads, timeout=SESSION + 20, interval=0.05)
    assert claims == [], f"the cut-off leader said it led {claims[-1] - cut:.1f}s after the cut"
    # The old session's lock node went at its expiry: the election node's pzxid says when.
    expired = election_changed(kazoo_client)
    assert writes_between(kazoo_client, after_proof, expired) == []

    # The standby heals meanwhile: the pod is back, created by it, and the new rows placed.
    def replaced() -> bool:
        return any(
            e.name == "iota-dac-0" and e.created_by == "new" for e in pods.added_after(deleted)
        )

    eventually(replaced, timeout=30, what="iota-dac-0 re-created by the new leader")
    eventually(
        lambda: sum(len(i["ids"]) for i in read_layout(kazoo_client, "Thing").values()) == 500,
        timeout=30,
        what="every Thing row on an instance",
    )

    proxy.pass_through()
    healed = time.time()
    eventually(lambda: old.role() == "standby", timeout=30, what="the old leader a standby")
    rejoined = time.time() - healed
    # A few passes on both sides after the heal, the old leader's role sampled all along.
    deadline = time.time() + 4 * 1.0
    while time.time() < deadline:
        assert leaders([old, new]) == [new]
        time.sleep(0.2)

    from_old = [e for e in pods.added_after(proof_end) if e.created_by == "old"]
    assert from_old == [], from_old
    assert old.applied(after=proof_end) == [], old.applied(after=proof_end)[:3]
    assert new.applied(after=cut), "the new leader applied nothing"
    print(
        f"\nFIGURE split brain: standby led {took_over - cut:.1f}s after the cut "
        f"(session {SESSION:g}s, proof {PROOF_SECONDS:g}s); old leader standby "
        f"{rejoined:.1f}s after the heal"
    )
