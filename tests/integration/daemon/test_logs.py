"""`reconciler run` as a subprocess on the real servers: its stderr is JSON lines (not a TTY),
one event per applied operation naming the resource, the instance and the reason."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import httpx

from rig.process import free_port
from tests.support.fleet import daemon_env, eventually, seed, write_policy

APPLY_EVENTS = {"operation applied", "operation pending", "operation failed"}


class Lines:
    """Collects a process's stderr lines in a thread (so the pipe never fills)."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self.thread = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self.thread.start()

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            self.lines.append(line)

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in list(self.lines) if line.strip()]


def test_one_json_log_event_per_applied_operation(
    zk_hosts: str, pg_url: str, kube: Any, kube_namespace: str, tmp_path: Path
) -> None:
    seed(pg_url, things=40, rules=5)
    policy = write_policy(
        tmp_path / "policy.yaml",
        kube_namespace,
        Thing={"initInstances": 4, "maxInstances": 10},
        Rule={"initInstances": 5, "maxInstances": 10},
    )
    port = free_port()
    env = {
        **daemon_env(tmp_path, zk_hosts, pg_url, kube),
        "RECONCILER_POLICY_PATH": str(policy),
        "RECONCILER_API_PORT": str(port),
        "RECONCILER_LOG_FORMAT": "auto",  # stderr is a pipe: JSON
    }
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "reconciler"), "run"],
        env=env,
        cwd=tmp_path,  # no .env from the repository
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    out = Lines(proc)
    try:
        status = f"http://127.0.0.1:{port}/v1/status"

        def instances() -> dict[str, int]:
            kinds = httpx.get(status, timeout=5).json()["kinds"]
            return {k: v["instances"] for k, v in kinds.items()}

        eventually(lambda: instances() == {"Thing": 4, "Rule": 5}, timeout=60)
        # Scale Rule down 5 -> 3: DeleteInstance and DeletePod for instances 3 and 4.
        policy.write_text(policy.read_text().replace("initInstances: 5", "initInstances: 3"))
        eventually(lambda: instances() == {"Thing": 4, "Rule": 3}, timeout=60)
        eventually(lambda: sum(e.get("op") == "DeletePod" for e in out.events()) == 2, timeout=30)

        def summaries_caught_up() -> bool:
            """The pass that deleted the pods has logged its summary too (after its ops)."""
            events = out.events()
            summed = sum(e["applied"] for e in events if e["event"] == "reconciled")
            return summed == sum(e["event"] == "operation applied" for e in events)

        eventually(summaries_caught_up, timeout=10, what="every pass's summary logged")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        out.thread.join(timeout=10)

    events = out.events()  # every line parses as JSON
    assert proc.returncode == 0, out.lines[-20:]
    assert "stopped" in [e["event"] for e in events]
    assert all({"event", "level", "timestamp"} <= e.keys() for e in events)
    applied = [e for e in events if e["event"] in APPLY_EVENTS]
    for e in applied:
        assert e["resource"] in ("Thing", "Rule"), e
        assert isinstance(e["instance_id"], int), e
        assert e["reason"], e
        assert e["op"], e
    ops = {(e["op"], e["resource"], e["instance_id"], e["reason"]) for e in applied}
    assert {("WriteInstance", "Thing", i, "new-instance") for i in range(4)} <= ops
    assert {("CreatePod", "Rule", i, "pod-missing") for i in range(5)} <= ops
    assert {("DeleteInstance", "Rule", i, "scale-down") for i in (3, 4)} <= ops
    assert {e["instance_id"] for e in applied if e["op"] == "DeletePod"} == {3, 4}
    assert all(e["pod"].startswith("iota-rules-engine-") for e in applied if e["op"] == "DeletePod")
    # The per-pass summaries add up to the per-operation events: none missing, none twice.
    summaries = [e for e in events if e["event"] == "reconciled"]
    assert sum(e["applied"] for e in summaries) == sum(
        e["event"] == "operation applied" for e in applied
    )
    assert len(applied) == len(ops)
