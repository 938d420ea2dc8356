"""`reconciler run --observe-only` as a process on the rig: the option beats the environment
(RECONCILER_OBSERVE_ONLY unset), the log says so first, status and /v1/plan say so, and on an
empty ZooKeeper not even the root or an election node appears."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from tests.support.fleet import daemon_env, eventually, seed, write_policy
from tests.support.polling import wait_for_log

CLI = Path(sys.executable).parent / "reconciler"


def _event(text: str, name: str) -> dict[str, Any] | None:
    for line in text.splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict) and event.get("event") == name:
            return event
    return None


def test_run_observe_only_creates_no_node_and_says_what_it_is(
    tmp_path: Path, zk_hosts: str, pg_url: str, kube: Any, kube_namespace: str, kazoo_client: Any
) -> None:
    seed(pg_url, things=20, rules=5)
    policy = write_policy(tmp_path / "policy.yaml", kube_namespace, tick=1)
    env = {
        **daemon_env(tmp_path, zk_hosts, pg_url, kube),
        "RECONCILER_POLICY_PATH": str(policy),
        "RECONCILER_IDENTITY": "observer",
    }
    log = tmp_path / "daemon.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(CLI), "run", "--observe-only"],
            env=env,
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        serving = wait_for_log(log, lambda text: _event(text, "serving"), 30, proc=proc)
        url = serving["url"]
        said = _event(log.read_text(), "observe-only")
        assert said is not None and said["identity"] == "observer"

        def planned() -> dict[str, Any]:
            doc = httpx.get(f"{url}/v1/plan", timeout=5).json()
            assert doc["kinds"].keys() == {"Thing", "Rule"}, doc
            return doc

        plan = eventually(planned, timeout=30)
        status = httpx.get(f"{url}/v1/status", timeout=5).json()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    assert plan["role"] == "observe-only"
    # an empty world: every instance and pod of both kinds to create
    assert plan["kinds"]["Thing"]["counts"]["WriteInstance"] == 10
    assert status["leadership"]["role"] == "observe-only"
    assert kazoo_client.get_children("/") == []  # no root, no `_leader`: nothing at all
