"""`reconciler plan --output json` and its detailed exit code against the rig's servers: 2 with
changes pending (the JSON lists them, nothing else on stdout), 0 on a converged world, 3 when a
source cannot be read (the JSON still printed, the partial plan said on stderr), and `plan`
writes nothing."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from kubernetes import client as k8s

from tests.support.fleet import daemon_env, eventually, fleet, seed, write_policy

CLI = Path(sys.executable).parent / "reconciler"
OPS = {"WriteInstance", "DeleteInstance", "CreatePod", "DeletePod", "RecreatePod", "AdoptPod"}


def plan(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CLI), "plan", *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=120
    )


def test_plan_json_lists_pending_changes_with_exit_2_then_exit_0_once_converged(
    tmp_path: Path, zk_hosts: str, pg_url: str, kube: Any, kube_namespace: str, kazoo_client: Any
) -> None:
    seed(pg_url, things=30, rules=12)
    policy = write_policy(
        tmp_path / "policy.yaml",
        kube_namespace,
        Thing={"initInstances": 3, "resourcePerInstance": 5000},
        Rule={"initInstances": 2, "resourcePerInstance": 500},
    )
    env = {**daemon_env(tmp_path, zk_hosts, pg_url, kube), "RECONCILER_POLICY_PATH": str(policy)}

    res = plan(env, tmp_path, "--output", "json")
    assert res.returncode == 2, res.stderr  # changes pending
    doc = json.loads(res.stdout)  # nothing but the document on stdout
    assert doc["role"] == "dry-run" and doc["partial"] is False and doc["sources"] == {}
    assert set(doc["kinds"]) == {"Thing", "Rule"}
    thing = doc["kinds"]["Thing"]
    assert thing["pass"]["trigger"] == "plan" and thing["pass"]["applied"] is False
    assert thing["rows"] == 30 and thing["instances"] == 3 and thing["blind"] == []
    assert set(thing["counts"]) == OPS
    assert thing["counts"]["WriteInstance"] == thing["counts"]["CreatePod"] == 3
    assert thing["pending"] == len(thing["operations"]) == 6
    write = next(o for o in thing["operations"] if o["op"] == "WriteInstance")
    assert write["reason"] == "new-instance" and write["create"] is True
    assert write["used"] == 10 and write["instanceId"] in (0, 1, 2)
    create = next(o for o in thing["operations"] if o["op"] == "CreatePod")
    assert create == {
        "op": "CreatePod",
        "reason": "pod-missing",
        "instanceId": create["instanceId"],
    }
    assert doc["pending"] == thing["pending"] + doc["kinds"]["Rule"]["pending"]
    assert kazoo_client.exists("/iota") is None  # a plan writes nothing, not even the root

    text = plan(env, tmp_path)  # the text output exits the same way
    assert text.returncode == 2 and "WriteInstance Thing/0 (create, new-instance)" in text.stdout

    core = k8s.CoreV1Api(kube.api_client())
    with fleet(zk_hosts, pg_url, kube.api_client(), policy) as f:
        f.tick()
        eventually(
            lambda: (
                len(pods := core.list_namespaced_pod(kube_namespace).items) == 5
                and all(p.status.phase == "Running" for p in pods)
            ),
            timeout=60,
        )
        assert f.tick().plan.ops == ()
    res = plan(env, tmp_path, "--output", "json", "--detailed-exitcode")
    assert res.returncode == 0, res.stdout + res.stderr
    doc = json.loads(res.stdout)
    assert doc["pending"] == 0 and all(k["operations"] == [] for k in doc["kinds"].values())
    assert plan(env, tmp_path).returncode == 0


def test_plan_json_with_the_database_down_is_partial_and_exit_3(
    tmp_path: Path, zk_hosts: str, kube: Any, kube_namespace: str
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    db = f"postgresql+psycopg://postgres@127.0.0.1:{closed}/iota"
    policy = write_policy(tmp_path / "policy.yaml", kube_namespace)
    env = {**daemon_env(tmp_path, zk_hosts, db, kube), "RECONCILER_POLICY_PATH": str(policy)}
    res = plan(env, tmp_path, "--output", "json")
    assert res.returncode == 3, res.stdout + res.stderr
    doc = json.loads(res.stdout)
    assert doc["partial"] is True and "database" in doc["sources"]
    assert doc["kinds"]["Thing"]["blind"] == ["rows"] and doc["kinds"]["Thing"]["partial"]
    (line,) = res.stderr.splitlines()
    assert line.startswith("reconciler: the plan is partial: database unreadable (")
