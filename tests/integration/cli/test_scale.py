"""Operators' scale, stop and start on the rig (ZooKeeper, PostgreSQL, apiserver + kwok), with
the real CLI against a running daemon: `reconciler scale Thing 5` pins five instances and
pods, `stop` leaves no instance, no assigned id and no pod, the pin outlives a restart of the
daemon, and `start` returns the kind to its policy."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
from kubernetes import client as k8s

from tests.support.daemon import running, settings_for
from tests.support.fleet import REPO, eventually, read_layout, seed, write_policy

TOKEN = "scale-token"
THINGS = 200


def cli(url: str, *args: str) -> str:
    res = subprocess.run(  # `reconciler ...` of this checkout
        [sys.executable, "-m", "reconciler.cli.main", *args, "--url", url, "--token", TOKEN],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert res.returncode == 0, res.stderr
    return res.stdout.strip()


def thing(kazoo: Any, core: k8s.CoreV1Api, ns: str) -> tuple[list[int], set[str], list[str]]:
    """Thing's instances in ZooKeeper, the ids they hold, its Running pods (not deleting)."""
    layout = read_layout(kazoo, "Thing") if kazoo.exists("/iota/orchestration/Thing") else {}
    pods = sorted(
        p.metadata.name
        for p in core.list_namespaced_pod(ns).items
        if p.metadata.name.startswith("iota-dac-")
        and p.metadata.deletion_timestamp is None
        and p.status.phase == "Running"
    )
    return sorted(layout), {rid for x in layout.values() for rid in x["ids"]}, pods


def test_scale_stop_and_start_a_kind_and_the_pin_outlives_a_restart(
    zk_hosts: str,
    pg_url: str,
    kube: Any,
    kube_namespace: str,
    kazoo_client: Any,
    tmp_path: Path,
) -> None:
    ns = kube_namespace
    seed(pg_url, things=THINGS, rules=5)
    policy = write_policy(
        tmp_path / "policy.yaml",
        ns,
        Thing={"initInstances": 3, "maxInstances": 6},
        Rule={"initInstances": 3},
    )
    settings = settings_for(zk_hosts, pg_url, kube, policy, token=TOKEN)
    core = k8s.CoreV1Api(kube.api_client())
    state = lambda: thing(kazoo_client, core, ns)  # noqa: E731
    dac = [f"iota-dac-{i}" for i in range(6)]

    with running(settings) as d:
        eventually(lambda: state()[0] == [0, 1, 2] and state()[2] == dac[:3], timeout=90)
        rows = state()[1]
        assert len(rows) == THINGS

        # scale: five instances, every id assigned, five pods Running
        out = cli(d.url, "scale", "Thing", "5")
        assert out == "Thing: pinned to 5 instances (was sized by the policy)"
        eventually(lambda: state() == ([0, 1, 2, 3, 4], rows, dac[:5]), timeout=90)
        status = httpx.get(f"{d.url}/v1/status", timeout=10).json()["kinds"]["Thing"]
        assert status["pin"]["instances"] == 5 and status["pin"]["by"] == "token"
        assert "PINNED to 5 instances by token" in cli(d.url, "status")

        # a bad count is refused naming the field, and changes nothing
        r = httpx.post(
            f"{d.url}/v1/api/orchestrations/Thing/scale",
            json={"instances": 7},
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=10,
        )
        assert r.status_code == 400, r.text
        assert r.json()["errors"] == [
            {"field": "instances", "message": "7 is above maxInstances 6"}
        ]
        r = httpx.post(f"{d.url}/v1/api/orchestrations/Thing/stop", timeout=10)
        assert r.status_code == 401  # same authorisation as the other POSTs

        # stop: no instance, no assigned id, no pod; the pin is in ZooKeeper
        assert cli(d.url, "stop", "Thing") == (
            "Thing: stopped; its instances and pods are deleted (was pinned to 5)"
        )
        eventually(lambda: state() == ([], set(), []), timeout=90)
        eventually(  # deleted, not only stopping
            lambda: (
                not any(
                    p.metadata.name.startswith("iota-dac-")
                    for p in core.list_namespaced_pod(ns).items
                )
            ),
            timeout=60,
        )
        node = json.loads(kazoo_client.get("/iota/orchestration/_scale/Thing")[0])
        assert node["instances"] == 0 and node["by"] == "token"
        assert len(read_layout(kazoo_client, "Rule")) == 3  # the other kind untouched

    # a new daemon reads the pin back: Thing stays stopped
    with running(settings) as d:
        eventually(
            lambda: httpx.get(f"{d.url}/v1/status", timeout=10).json()["lastPass"]["at"],
            timeout=60,
        )
        status = httpx.get(f"{d.url}/v1/status", timeout=10).json()
        assert status["kinds"]["Thing"]["pin"]["instances"] == 0
        assert state() == ([], set(), [])
        assert "STOPPED by token" in cli(d.url, "status")

        # start: back to the policy's three instances, every id assigned, the pin gone
        assert cli(d.url, "start", "Thing") == "Thing: sized by the policy again (was stopped)"
        eventually(lambda: state() == ([0, 1, 2], rows, dac[:3]), timeout=90)
        assert kazoo_client.exists("/iota/orchestration/_scale/Thing") is None
        assert httpx.get(f"{d.url}/v1/status", timeout=10).json()["kinds"]["Thing"]["pin"] is None


def test_a_stop_outlives_a_leader_failover_and_a_standby_refuses_to_pin(
    zk_hosts: str,
    pg_url: str,
    kube: Any,
    kube_namespace: str,
    kazoo_client: Any,
    tmp_path: Path,
) -> None:
    ns = kube_namespace
    seed(pg_url, things=THINGS, rules=5)
    policy = write_policy(tmp_path / "policy.yaml", ns, Thing={"initInstances": 3})
    core = k8s.CoreV1Api(kube.api_client())
    state = lambda: thing(kazoo_client, core, ns)  # noqa: E731
    first = running(settings_for(zk_hosts, pg_url, kube, policy, token=TOKEN, identity="a"))
    a = first.__enter__()
    try:
        eventually(lambda: state()[0] == [0, 1, 2] and len(state()[2]) == 3, timeout=90)
        rows = state()[1]
        with running(settings_for(zk_hosts, pg_url, kube, policy, token=TOKEN, identity="b")) as b:
            role = lambda d: httpx.get(f"{d.url}/v1/status", timeout=10).json()["leadership"]  # noqa: E731
            eventually(lambda: role(b)["role"] == "standby" and role(b)["leader"] == "a")
            r = httpx.post(
                f"{b.url}/v1/api/orchestrations/Thing/stop",
                headers={"Authorization": f"Bearer {TOKEN}"},
                timeout=10,
            )
            assert r.status_code == 503 and "standby" in r.json()["error"]

            cli(a.url, "stop", "Thing")
            eventually(lambda: state() == ([], set(), []), timeout=90)
            first.__exit__(None, None, None)  # the leader goes; b takes over
            first = None
            eventually(lambda: role(b)["role"] == "leader", timeout=60)
            # b has run a pass as the leader, and holds Thing stopped
            eventually(lambda: (p := b.app.daemon.last_pass) is not None and not p.standby)
            status = httpx.get(f"{b.url}/v1/status", timeout=10).json()
            assert status["kinds"]["Thing"]["pin"]["instances"] == 0
            assert state() == ([], set(), [])
            assert cli(b.url, "start", "Thing") == "Thing: sized by the policy again (was stopped)"
            eventually(lambda: state()[:2] == ([0, 1, 2], rows), timeout=90)
    finally:
        if first is not None:
            first.__exit__(None, None, None)
