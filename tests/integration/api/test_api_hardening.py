"""The REST API of a real `reconciler run` on the rig, hardened (issue 13): it will not listen
beyond loopback without a token, serves HTTPS when given a certificate, refuses an
unauthenticated or oversized body without reading it. (The concurrency limit that spares the
probes: tests/unit/api/test_api_guard.py.)"""

from __future__ import annotations

import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from rig.pki import make_pki
from tests.support.fleet import daemon_env, eventually, seed, write_policy
from tests.support.processes import DaemonProcess

CLI = Path(sys.executable).parent / "reconciler"
TOKEN = "hardening-token"


def test_an_open_api_beyond_loopback_refuses_to_start_in_one_line(
    tmp_path: Path, zk_hosts: str, pg_url: str, kube: Any, kube_namespace: str
) -> None:
    env = {
        **daemon_env(tmp_path, zk_hosts, pg_url, kube),
        "RECONCILER_POLICY_PATH": str(write_policy(tmp_path / "policy.yaml", kube_namespace)),
        "RECONCILER_API_HOST": "0.0.0.0",
    }
    res = subprocess.run(
        [str(CLI), "run"], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60
    )
    assert res.returncode == 2
    assert res.stderr.splitlines() == [
        "reconciler: the REST API would listen on 0.0.0.0 (beyond loopback) with no token: "
        "set RECONCILER_API_TOKEN (or RECONCILER_API_TOKEN_FILE), or listen on 127.0.0.1 "
        "with --api-host"
    ]


def test_https_with_the_token_works_and_bodies_are_refused_before_they_are_read(
    tmp_path: Path, zk_hosts: str, pg_url: str, kube: Any, kube_namespace: str
) -> None:
    pki = make_pki(tmp_path / "pki")
    seed(pg_url, things=50, rules=5)
    policy = write_policy(tmp_path / "policy.yaml", kube_namespace)
    d = DaemonProcess(
        tmp_path,
        zk_hosts,
        pg_url,
        kube,
        policy,
        "hardened",
        env={
            "RECONCILER_API_TOKEN": TOKEN,
            "RECONCILER_API_TLS_CERT_FILE": str(pki.server_cert),
            "RECONCILER_API_TLS_KEY_FILE": str(pki.server_key),
        },
    )
    base = f"https://127.0.0.1:{d.port}"
    try:
        api = httpx.Client(base_url=base, verify=_trusting(pki.ca), timeout=10)
        eventually(lambda: api.get("/readyz").status_code == 200, timeout=60)
        with httpx.Client(base_url=base, verify=_trusting(pki.other_ca), timeout=5) as stranger:
            try:
                stranger.get("/healthz")
                raise AssertionError("a certificate from another CA was accepted")
            except httpx.ConnectError:
                pass  # the TLS handshake failed, as it must
        orchestrate = "/v1/api/orchestrations/Thing/orchestrate"
        ok = api.post(orchestrate, headers={"Authorization": f"Bearer {TOKEN}"}, json={})
        assert ok.status_code == 200, ok.text

        # 200 MB announced, a few bytes sent: refused at once, the daemon never waits for it.
        for headers, status in (({}, 401), ({"Authorization": f"Bearer {TOKEN}"}, 413)):
            answer = _raw_post(d.port, pki.ca, orchestrate, 200_000_000, headers)
            assert answer.startswith(f"HTTP/1.1 {status}"), answer

        api.close()
    finally:
        d.close()


def _trusting(ca: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(ca))


def _tls(port: int, ca: Path) -> Any:
    context = _trusting(ca)
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    return context.wrap_socket(sock, server_hostname="127.0.0.1")


def _raw_post(port: int, ca: Path, path: str, length: int, headers: dict[str, str]) -> str:
    """A POST announcing `length` bytes and sending 5: the status line that comes back."""
    with _tls(port, ca) as s:
        lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", f"Content-Length: {length}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        s.sendall(("\r\n".join(lines) + "\r\n\r\nhello").encode())
        started = time.monotonic()
        answer = s.recv(4096).decode(errors="replace")
        assert time.monotonic() - started < 5
        return answer
