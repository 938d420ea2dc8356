"""The CLI against the rig's real servers: `run` on a busy port stops before it connects
anywhere (Mosquitto never sees it), its options beat the environment, and `plan` says in one
line which server it could not reach."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.fleet import daemon_env, eventually, write_policy
from tests.support.polling import wait_for_log

CLI = Path(sys.executable).parent / "reconciler"


def one_line(res: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in res.stderr + res.stdout, res.stderr
    lines = res.stderr.splitlines()
    assert len(lines) == 1, res.stderr
    return lines[0]


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port something else listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


def _mqtt_clients(mqtt: Any) -> str:
    """Mosquitto's log (connection_messages on: 'New client connected ... as <client id>')."""
    return Path(mqtt.log_path).read_text(errors="replace")


def test_run_on_a_busy_port_exits_before_connecting_anywhere(
    tmp_path: Path,
    busy_port: int,
    zk_hosts: str,
    pg_url: str,
    kube: Any,
    kube_namespace: str,
    mqtt: Any,
) -> None:
    policy = write_policy(tmp_path / "policy.yaml", kube_namespace)
    client_id = f"busy-{uuid.uuid4().hex[:8]}"
    env = {
        **daemon_env(tmp_path, zk_hosts, pg_url, kube),
        "RECONCILER_POLICY_PATH": str(policy),
        "RECONCILER_MQTT_BROKERS": mqtt.url,
        "RECONCILER_MQTT_CLIENT_ID": client_id,
        "RECONCILER_API_PORT": str(busy_port),
    }
    t0 = time.monotonic()
    res = subprocess.run(
        [str(CLI), "run"], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60
    )
    took = time.monotonic() - t0
    line = one_line(res)
    assert res.returncode == 2
    assert line == (
        f"reconciler: cannot serve the REST API on 127.0.0.1:{busy_port}: the port is in use "
        "(another reconciler?): stop what holds it, or choose another port with --api-port "
        "or RECONCILER_API_PORT"
    )
    assert res.stdout == ""  # not even the "starting" log line: nothing was started
    print(f"busy port refused in {took:.2f}s")

    # The control: the same settings with --api-port on a free port do connect to Mosquitto,
    # so the check below would see a connection if there had been one. The option beats the
    # environment (RECONCILER_API_PORT is still the busy port).
    assert client_id not in _mqtt_clients(mqtt)
    log = tmp_path / "daemon.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen(
            [str(CLI), "run", "--api-port", "0", "--log-level", "DEBUG"],
            env=env,
            cwd=tmp_path,
            stdout=fh,
            stderr=subprocess.STDOUT,
        )
    try:
        serving = wait_for_log(log, lambda text: _event(text, "serving"), 30, proc=proc)
        port = int(serving["url"].rsplit(":", 1)[1])
        assert port != busy_port
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200
        starting = _event(log.read_text(), "starting")
        assert starting and starting["settings"]["log_level"] == "debug"
        eventually(lambda: client_id in _mqtt_clients(mqtt), timeout=30)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


def _event(text: str, name: str) -> dict[str, Any] | None:
    for line in text.splitlines():
        try:
            ev = json.loads(line)
        except ValueError:
            continue
        if isinstance(ev, dict) and ev.get("event") == name:
            return ev
    return None


def test_plan_without_zookeeper_is_one_line_and_exit_3(
    tmp_path: Path, pg_url: str, kube: Any, kube_namespace: str
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    policy = write_policy(tmp_path / "policy.yaml", kube_namespace)
    env = {
        **daemon_env(tmp_path, f"127.0.0.1:{closed}", pg_url, kube),
        "RECONCILER_POLICY_PATH": str(policy),
    }
    res = subprocess.run(
        [str(CLI), "plan", "--wait", "1"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
    )
    assert res.returncode == 3, res.stdout + res.stderr
    assert one_line(res) == (
        f"reconciler: no ZooKeeper session with 127.0.0.1:{closed} after 1 s: start it or fix "
        "RECONCILER_ZK_HOSTS"
    )


def test_plan_with_the_database_down_prints_the_partial_plan_then_says_why(
    tmp_path: Path, zk_hosts: str, kube: Any, kube_namespace: str
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    db = f"postgresql+psycopg://postgres@127.0.0.1:{closed}/iota"
    policy = write_policy(tmp_path / "policy.yaml", kube_namespace)
    env = {**daemon_env(tmp_path, zk_hosts, db, kube), "RECONCILER_POLICY_PATH": str(policy)}
    res = subprocess.run(
        [str(CLI), "plan"], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120
    )
    assert res.returncode == 3, res.stdout + res.stderr
    assert "Thing: rows=None" in res.stdout and "BLIND: rows" in res.stdout
    line = one_line(res)
    assert line.startswith("reconciler: the plan is partial: database unreadable (")
    assert line.endswith("start it or fix RECONCILER_DATABASE_URL")
    assert str(closed) in line
