"""Each read observe makes, bounded by what the pass has left of its budget
(reconciler/domain/call_limit.py), against the rig's real servers SIGSTOPped: a frozen server
answers nothing, so the read ends at its deadline; inside a pass's reads that is the budget's
rest when it is shorter than the read's own, outside it the read's own as before."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from reconciler.adapters.kube.client import make_api_client
from reconciler.adapters.kube.pods import KubePods
from reconciler.adapters.sql.inventory import CLIENT_GRACE, Inventory, create_tables, insert_ids
from reconciler.adapters.zookeeper.session import ZkSession
from reconciler.adapters.zookeeper.store import ZkStore
from reconciler.domain.call_limit import reads_within
from reconciler.domain.errors import SourceUnavailable
from reconciler.policy.templates import load_pod_template

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
OWN = 5.0  # each client's own read deadline here
LEFT = 1.5  # what the pass has left of its budget
SLACK = 0.5  # scheduling, and the client noticing its deadline


def _frozen_read_takes(server: Any, read: Callable[[], object], left: float | None) -> float:
    """Seconds until `read()` gives up with `server` frozen (within a pass's reads with
    `left` seconds left; None: outside any pass)."""
    server.pause()
    try:
        started = time.monotonic()
        with pytest.raises(SourceUnavailable):
            if left is None:
                read()
            else:
                with reads_within(lambda: left):
                    read()
        return time.monotonic() - started
    finally:
        server.resume()


def test_a_database_read_ends_when_the_pass_budget_does(pg: Any, pg_url: str) -> None:
    create_tables(pg_url)
    insert_ids(pg_url, "Thing", ["a", "b"])
    inventory = Inventory(pg_url, statement_timeout=OWN)
    try:
        inventory.ids("Thing")  # the pool holds a connection: the read, not a connect, hangs
        took = _frozen_read_takes(pg, lambda: inventory.ids("Thing"), LEFT)
        assert LEFT <= took < LEFT + SLACK, took
        inventory.ids("Thing")
        took_own = _frozen_read_takes(pg, lambda: inventory.ids("Thing"), None)
        assert OWN + CLIENT_GRACE <= took_own < OWN + CLIENT_GRACE + SLACK, took_own
    finally:
        inventory.close()
    print(f"\nFIGURE frozen database read: {took:.2f} s with {LEFT} s left, {took_own:.2f} s alone")


def test_a_zookeeper_read_ends_when_the_pass_budget_does(zk: Any, zk_hosts: str) -> None:
    session = ZkSession(zk_hosts, timeout=OWN, session_timeout=30.0)
    session.start()
    try:
        store = ZkStore(session)
        store.read("Thing")
        took = _frozen_read_takes(zk, lambda: store.read("Thing"), LEFT)
        assert LEFT <= took < LEFT + SLACK, took
    finally:
        session.stop()
    print(f"\nFIGURE frozen ZooKeeper read: {took:.2f} s with {LEFT} s left (own {OWN} s)")


def test_a_pod_list_ends_when_the_pass_budget_does(kube: Any, kube_namespace: str) -> None:
    template = load_pod_template(
        "Thing", kube_namespace, "iota-dac", ROOT / "templates/iota-dac/pod-template.yml"
    )
    # The daemon's own client: its retry policy never retries a read (a timeout included).
    api = make_api_client(
        in_cluster=False, kubeconfig=None, url=kube.url, token=kube.token, ca_file=str(kube.ca_file)
    )
    try:
        pods = KubePods(api, {"Thing": template}, request_timeout=OWN)
        pods.list_pods("Thing")  # a kept-alive connection: the answer, not a connect, hangs
        took = _frozen_read_takes(kube, lambda: pods.list_pods("Thing"), LEFT)
        assert LEFT <= took < LEFT + SLACK, took
    finally:
        api.close()
    print(f"\nFIGURE frozen apiserver pod list: {took:.2f} s with {LEFT} s left (own {OWN} s)")
