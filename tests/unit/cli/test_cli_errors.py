"""The CLI's expected failures: one line on stderr that names the fix, a non-zero exit, never a
traceback (reconciler/cli/main.py, reconciler/cli/preflight.py). No server is needed: the failures
here
happen before anything is contacted, or against a stand-in HTTP server."""

from __future__ import annotations

import http.server
import importlib.metadata
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from reconciler.cli.preflight import describe
from reconciler.config.settings import Settings

REPO = Path(__file__).resolve().parents[3]
CLI = Path(sys.executable).parent / "reconciler"


def cli(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """`reconciler ARGS` with nothing from this environment but PATH, and HOME=cwd (no
    ~/.kube/config, no .env)."""
    base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(cwd)}
    return subprocess.run(
        [str(CLI), *args], capture_output=True, text=True, cwd=cwd, env={**base, **env}, timeout=60
    )


def one_line(res: subprocess.CompletedProcess[str]) -> str:
    assert res.returncode != 0, res.stdout + res.stderr
    assert "Traceback" not in res.stderr + res.stdout
    lines = res.stderr.splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("reconciler: "), lines
    return lines[0]


def test_version_is_the_installed_packages(tmp_path: Path) -> None:
    res = cli("--version", cwd=tmp_path)
    assert res.returncode == 0
    assert res.stdout == f"reconciler {importlib.metadata.version('reconciler')}\n"


def test_plan_with_no_settings_names_the_missing_policy(tmp_path: Path) -> None:
    res = cli("plan", cwd=tmp_path)
    line = one_line(res)
    assert res.returncode == 1 and res.stdout == ""  # 2 is `plan`'s "changes pending"
    assert f"no policy file at config/policy.yaml (relative to {tmp_path})" in line
    assert "--policy or RECONCILER_POLICY_PATH" in line
    assert list(tmp_path.iterdir()) == []  # nothing created (no iota.db)


def test_plan_without_kubernetes_credentials_names_the_three_ways(tmp_path: Path) -> None:
    res = cli("plan", "--policy", str(REPO / "config" / "policy.yaml"), cwd=tmp_path)
    line = one_line(res)
    assert res.returncode == 1
    assert "no usable Kubernetes credentials" in line
    assert "RECONCILER_KUBE_IN_CLUSTER" in line and "KUBECONFIG" in line
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", [["plan"], ["run"], ["status"], ["validate"]])
def test_an_invalid_setting_is_one_line_naming_the_variable(
    tmp_path: Path, command: list[str]
) -> None:
    res = cli(*command, cwd=tmp_path, RECONCILER_API_PORT="eighty")
    line = one_line(res)
    assert res.returncode == (1 if command == ["plan"] else 2)  # plan: 2 is "changes pending"
    assert "invalid settings: RECONCILER_API_PORT='eighty': Input should be a valid integer" in line


def test_several_invalid_settings_stay_on_one_line(tmp_path: Path) -> None:
    line = one_line(
        cli("plan", cwd=tmp_path, RECONCILER_KUBE_VERIFY_SSL="maybe", RECONCILER_LOG_FORMAT="xml")
    )
    assert "RECONCILER_KUBE_VERIFY_SSL='maybe'" in line and "RECONCILER_LOG_FORMAT='xml'" in line


def test_an_invalid_secret_is_named_but_never_printed() -> None:
    with pytest.raises(ValidationError) as err:
        Settings(database_url=["postgresql://u:hunter2@db/iota"], _env_file=None)
    text = describe(err.value)
    assert text.startswith("invalid settings: RECONCILER_DATABASE_URL: ")
    assert "hunter2" not in text


def test_a_plan_usage_error_exits_1_not_2_which_means_changes_pending(tmp_path: Path) -> None:
    res = cli("plan", "--output", "yaml", cwd=tmp_path)
    assert res.returncode == 1 and res.stdout == "" and "Traceback" not in res.stderr
    assert "Invalid value for '--output': 'yaml' is not one of 'text', 'json'" in res.stderr


def test_plan_with_a_broken_policy_is_one_line_and_exit_1(tmp_path: Path) -> None:
    bad = tmp_path / "policy.yaml"
    bad.write_text("tickSeconds: 0\nkinds: {}\n")
    res = cli("plan", "--policy", str(bad), "--output", "json", cwd=tmp_path)
    line = one_line(res)
    assert res.returncode == 1 and res.stdout == ""
    assert f"{bad}:1: tickSeconds: 0 is out of range" in line


def test_plan_accepts_terraforms_detailed_exitcode_flag(tmp_path: Path) -> None:
    res = cli("plan", "--detailed-exitcode", "--output", "json", cwd=tmp_path)
    assert res.returncode == 1 and res.stdout == ""  # no policy here: an error, not a usage one
    assert "no policy file at config/policy.yaml" in one_line(res)


def test_run_option_out_of_range_is_a_usage_error(tmp_path: Path) -> None:
    res = cli("run", "--api-port", "99999", cwd=tmp_path)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "Invalid value for '--api-port': 99999 is not in the range 0<=x<=65535" in res.stderr


def test_run_with_a_broken_policy_is_one_line_with_its_first_problem(tmp_path: Path) -> None:
    bad = tmp_path / "policy.yaml"
    bad.write_text("tickSeconds: 0\nkinds: {}\n")
    line = one_line(cli("run", "--policy", str(bad), "--api-port", "0", cwd=tmp_path))
    assert f"{bad}:1: tickSeconds: 0 is out of range" in line
    assert f"`reconciler validate {bad}`" in line


# ------------------------------------------------------------------ status against a stand-in


class StandIn(http.server.BaseHTTPRequestHandler):
    """Answers /v1/status as configured on the server: (code, body); records the headers."""

    def do_GET(self) -> None:
        self.server.seen.append(dict(self.headers))  # type: ignore[attr-defined]
        code, body = self.server.answer  # type: ignore[attr-defined]
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def stand_in() -> Iterator[Any]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), StandIn)
    server.seen = []  # type: ignore[attr-defined]
    server.answer = (200, "{}")  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _url(server: Any) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}"


def test_status_with_a_refused_token_names_the_fix(stand_in: Any, tmp_path: Path) -> None:
    stand_in.answer = (401, json.dumps({"error": "a bearer token is required"}))
    line = one_line(
        cli("status", "--url", _url(stand_in), cwd=tmp_path, RECONCILER_API_TOKEN="wrong")
    )
    assert "refused the request (HTTP 401)" in line
    assert "--token" in line and "RECONCILER_API_TOKEN" in line
    assert "wrong" not in line
    assert stand_in.seen[-1]["Authorization"] == "Bearer wrong"

    line = one_line(cli("status", "--url", _url(stand_in), "--token", "other", cwd=tmp_path))
    assert stand_in.seen[-1]["Authorization"] == "Bearer other"


def test_status_of_something_that_is_not_the_daemon(stand_in: Any, tmp_path: Path) -> None:
    stand_in.answer = (200, "<html>hello</html>")
    line = one_line(cli("status", "--url", _url(stand_in), cwd=tmp_path))
    assert "did not answer JSON: is --url a reconciler?" in line


def test_status_of_a_daemon_that_is_not_running(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    res = cli("status", cwd=tmp_path, RECONCILER_API_PORT=str(port))
    line = one_line(res)
    assert res.returncode == 3
    assert f"cannot reach the daemon at http://127.0.0.1:{port} " in line
    assert "Connection refused" in line and "--url" in line
