"""Writes reach the leader whichever replica the Service picks (reconciler/api/forward.py):
two real `reconciler run` processes on the rig's ZooKeeper, each publishing its REST address
(derived from 127.0.0.1 and its port) with its candidacy; the old admin UI's `orchestrate`
POST (docs/contracts.md "REST API") is sent to each replica's address in turn.

Both daemons have the bearer token and trust `X-Forwarded-User` from 127.0.0.2 only (the
"authenticating proxy": a client that binds its end to 127.0.0.2). A standby forwards from
127.0.0.1, so the leader never takes it for that proxy.
"""

from __future__ import annotations

import re
import signal
import time
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.fleet import eventually, read_layout, seed, write_policy
from tests.support.processes import DaemonProcess, wait_for_leader

TOKEN = "forwarding-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
ORCHESTRATE = "/v1/api/orchestrations/Thing/orchestrate"
SESSION = 6.0  # RECONCILER_ZK_SESSION_TIMEOUT of both daemons
ENV = {
    "RECONCILER_API_TOKEN": TOKEN,
    "RECONCILER_API_TRUSTED_HEADER": "X-Forwarded-User",
    "RECONCILER_API_TRUSTED_PROXIES": "127.0.0.2",
}


@pytest.fixture
def pair(
    tmp_path: Path, zk_hosts: str, pg_url: str, kube: Any, kube_namespace: str, kazoo_client: Any
) -> Iterator[tuple[DaemonProcess, DaemonProcess]]:
    """(leader, standby), the Thing layout written by the leader's first passes."""
    seed(pg_url, things=60, rules=5)
    policy = write_policy(
        tmp_path / "policy.yaml",
        kube_namespace,
        tick=60,  # no tick during the test: every pass after the first is a request's
        Thing={"initInstances": 3, "maxInstances": 10, "resourcePerInstance": 100},
        Rule={"initInstances": 3, "maxInstances": 10},
    )
    daemons = [
        DaemonProcess(tmp_path, zk_hosts, pg_url, kube, policy, name, env=ENV)
        for name in ("d0", "d1")
    ]
    try:
        leader = wait_for_leader(daemons)
        (standby,) = [d for d in daemons if d is not leader]
        eventually(lambda: len(read_layout(kazoo_client, "Thing")) == 3, timeout=60)
        eventually(lambda: (s := standby.status()) and s["leadership"]["leader"] == leader.identity)
        yield leader, standby
    finally:
        for d in daemons:
            d.close()


def url(d: DaemonProcess) -> str:
    return f"http://127.0.0.1:{d.port}"


def counter(d: DaemonProcess, series: str) -> float:
    """One series of the daemon's /metrics (0 when absent)."""
    text = httpx.get(f"{url(d)}/metrics", timeout=10).text
    found = re.search(rf"^{re.escape(series)} (\S+)$", text, re.M)
    return float(found.group(1)) if found else 0.0


def orchestrations(d: DaemonProcess) -> float:
    return counter(d, 'reconciler_reconciles_total{trigger="orchestrate"}')


def requested(d: DaemonProcess) -> list[dict[str, Any]]:
    """The `orchestrate requested` log events of the daemon (one per applied call)."""
    return [e for e in d.events() if e.get("event") == "orchestrate requested"]


def layout(kazoo: Any) -> dict[str, int]:
    """Thing's instances in ZooKeeper: instance id -> capacity (the node's count)."""
    return {str(i): inst["node"]["count"] for i, inst in read_layout(kazoo, "Thing").items()}


def via_proxy(d: DaemonProcess) -> httpx.Client:
    """A client whose connections come from 127.0.0.2: the trusted proxy."""
    transport = httpx.HTTPTransport(local_address="127.0.0.2")
    return httpx.Client(base_url=url(d), timeout=90, transport=transport)


def test_the_old_uis_orchestrate_sent_to_each_replica_is_applied_once_by_the_leader(
    pair: tuple[DaemonProcess, DaemonProcess], kazoo_client: Any
) -> None:
    leader, standby = pair
    before = orchestrations(leader), orchestrations(standby)
    # 60 rows: each size needs another instance count than the one before it.
    calls = [(leader, 15), (standby, 12), (leader, 10), (standby, 20), (standby, 15)]
    sizes = []
    for target, per_instance in calls:
        r = httpx.post(
            f"{url(target)}{ORCHESTRATE}",
            json={"resourcePerInstance": per_instance},
            headers=AUTH,
            timeout=90,
        )
        assert r.status_code == 200, (target.identity, r.status_code, r.text)
        assert r.headers["X-Reconciler-Leader"] == leader.identity
        assert r.headers["content-type"] == "application/json"
        assert r.json()["resourcePerInstance"] == per_instance
        # The effect is in ZooKeeper when the answer comes (orchestrate waits for its pass).
        answered = {i["instanceId"]: i["count"] for i in r.json()["instances"]}
        assert layout(kazoo_client) == answered
        sizes.append(len(answered))
    assert all(a != b for a, b in pairwise(sizes)), sizes  # each call took effect

    # Each call applied once, all by the leader; the standby forwarded its three.
    assert orchestrations(leader) == before[0] + len(calls)
    assert orchestrations(standby) == before[1]
    assert [e["overrides"] for e in requested(leader)] == [
        {"resourcePerInstance": n} for _, n in calls
    ]
    assert requested(standby) == [] and standby.applied() == []
    forwarded = [e for e in standby.events() if e.get("event") == "request forwarded"]
    assert [(e["result"], e["status"], e["leader"]) for e in forwarded] == [
        ("relayed", 200, leader.identity)
    ] * 3
    assert counter(standby, 'reconciler_api_forwarded_total{result="relayed"}') == 3
    took = [e["seconds"] for e in forwarded]
    print(f"\nFIGURE orchestrate forwarded by the standby: {min(took)}-{max(took)} s round trip")

    # Through the authenticating proxy, no token: the leader logs the proxy's user.
    for target in (standby, leader):
        with via_proxy(target) as proxied:
            r = proxied.post(ORCHESTRATE, headers={"X-Forwarded-User": "alice"}, json={})
        assert r.status_code == 200, r.text
        assert r.headers["X-Reconciler-Leader"] == leader.identity
    assert [e["by"] for e in requested(leader)[-2:]] == ["alice", "alice"]
    assert orchestrations(leader) == before[0] + len(calls) + 2

    # Without credentials, the standby refuses it itself: nothing reaches the leader.
    r = httpx.post(f"{url(standby)}{ORCHESTRATE}", json={}, timeout=30)
    assert r.status_code == 401
    # Nor can a client name a user to the leader: the forwarded-user header needs the marker
    # and the token, and then it is the token holder who speaks.
    r = httpx.post(
        f"{url(leader)}{ORCHESTRATE}",
        json={},
        headers={"X-Reconciler-Forwarded-By": "d9", "X-Reconciler-Forwarded-User": "root"},
        timeout=30,
    )
    assert r.status_code == 401
    assert orchestrations(leader) == before[0] + len(calls) + 2


def test_a_request_marked_as_forwarded_is_refused_by_a_standby_not_forwarded_again(
    pair: tuple[DaemonProcess, DaemonProcess],
) -> None:
    leader, standby = pair
    before = orchestrations(leader)
    r = httpx.post(
        f"{url(standby)}{ORCHESTRATE}",
        json={},
        headers={**AUTH, "X-Reconciler-Forwarded-By": "forged"},
        timeout=30,
    )
    assert r.status_code == 503, r.text
    assert int(r.headers["Retry-After"]) > 0
    assert "already forwarded" in r.json()["error"]
    assert orchestrations(leader) == before and requested(leader) == []
    assert not [e for e in standby.events() if e.get("event") == "request forwarded"]
    assert counter(standby, 'reconciler_api_forwarded_total{result="loop"}') == 1


def test_with_the_leader_killed_the_standby_answers_503_until_it_takes_over(
    pair: tuple[DaemonProcess, DaemonProcess],
) -> None:
    leader, standby = pair
    leader.signal(signal.SIGKILL)
    killed = time.monotonic()
    leader.proc.wait(timeout=10)
    # Its lock node stays until its session expires: the standby still names it as the
    # leader, and cannot reach it.
    r = httpx.post(f"{url(standby)}{ORCHESTRATE}", json={}, headers=AUTH, timeout=30)
    within = time.monotonic() - killed
    assert r.status_code == 503, r.text
    assert int(r.headers["Retry-After"]) > 0
    assert "cannot be reached" in r.json()["error"] and leader.identity in r.json()["error"]
    assert within < SESSION and standby.role() == "standby"  # none elected yet
    assert counter(standby, 'reconciler_api_forwarded_total{result="unreachable"}') == 1

    eventually(lambda: standby.role() == "leader", timeout=SESSION + 10)
    r = httpx.post(f"{url(standby)}{ORCHESTRATE}", json={}, headers=AUTH, timeout=90)
    assert r.status_code == 200, r.text
    assert r.headers["X-Reconciler-Leader"] == standby.identity
    assert len(requested(standby)) == 1
