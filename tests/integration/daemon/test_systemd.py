"""The daemon speaks sd_notify for real: `reconciler run` as a child process against the rig's
servers, with NOTIFY_SOCKET pointing at a datagram socket this test binds, as systemd would.

The unit file itself (`systemd-analyze verify`, the security rating) needs no server:
tests/unit/runtime/test_systemd.py.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.fleet import daemon_env, write_policy
from tests.support.polling import eventually, wait_for_log

VENV_BIN = Path(sys.executable).parent / "reconciler"


class NotifySocket:
    """What systemd does for Type=notify: a datagram socket the service writes lines to."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.received: list[tuple[float, str]] = []

    def wait_for(self, line: str, timeout: float) -> float:
        """Read datagrams until one carries `line`; returns when it arrived (monotonic)."""

        def arrived() -> float:
            at = self._arrival(line)
            if at is None and self._receive(0.1):
                at = self._arrival(line)
            if at is None:
                raise AssertionError(f"no {line} within {timeout}s; got {self.received}")
            return at

        return eventually(arrived, timeout=timeout, interval=0, what=line)  # recv blocks

    def _arrival(self, line: str) -> float | None:
        return next((at for at, msg in self.received if line in msg.split("\n")), None)

    def _receive(self, wait: float) -> bool:
        """One datagram into `received`, waiting up to `wait` seconds; False if none came."""
        self.sock.settimeout(wait)
        try:
            data = self.sock.recv(4096)
        except TimeoutError:
            return False
        self.received.append((time.monotonic(), data.decode()))
        return True

    def drain(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0 and self._receive(left):
            pass

    def close(self) -> None:
        self.sock.close()


def _json_events(text: str) -> list[dict[str, Any]]:
    """The JSON objects among a log's lines (other lines skipped)."""
    out = []
    for line in text.splitlines():
        try:
            ev = json.loads(line)
        except ValueError:
            continue
        if isinstance(ev, dict):
            out.append(ev)
    return out


class DaemonProc:
    """`reconciler run` as a child process with its JSON log lines in a file."""

    def __init__(self, env: dict[str, str], log_path: Path, cwd: Path) -> None:
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 (closed in stop)
        self.popen = subprocess.Popen(
            [str(VENV_BIN), "run"],
            env=env,
            cwd=cwd,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )

    def events(self) -> list[dict[str, Any]]:
        return _json_events(self.log_path.read_text(errors="replace"))

    def wait_event(self, event: str, timeout: float = 20.0, **match: Any) -> dict[str, Any]:
        """The first log event `event` with the fields in `match`; fails at once if the daemon
        exits without it."""

        def find(text: str) -> dict[str, Any] | None:
            return next(
                (
                    ev
                    for ev in _json_events(text)
                    if ev.get("event") == event and all(ev.get(k) == v for k, v in match.items())
                ),
                None,
            )

        return wait_for_log(
            self.log_path,
            find,
            timeout,
            proc=self.popen,
            interval=0.1,
            what=f"log event {event!r} {match}",
        )

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait(10)
        self._log.close()


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[NotifySocket]:
    # AF_UNIX paths are limited to 108 bytes: pytest's tmp_path can be longer.
    path = Path(f"/tmp/reconciler-notify-{os.getpid()}-{time.monotonic_ns()}.sock")
    sock = NotifySocket(path)
    yield sock
    sock.close()
    path.unlink(missing_ok=True)


def _metric(url: str, name: str, **labels: str) -> float:
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as r:
        text = r.read().decode()
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in text.splitlines():
        if line.startswith(f"{name}{{{want}}} ") or (not labels and line.startswith(name + " ")):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_sd_notify_ready_watchdog_reload_stopping(
    tmp_path: Path,
    notify_socket: NotifySocket,
    zk_hosts: str,
    pg_url: str,
    kube: Any,
    kube_namespace: str,
) -> None:
    from reconciler.adapters.sql.inventory import create_tables

    create_tables(pg_url)
    policy = write_policy(
        tmp_path / "policy.yaml",
        kube_namespace,
        tick=30,
        Thing={"initInstances": 3},
        Rule={"initInstances": 3},
    )
    env = daemon_env(tmp_path, zk_hosts, pg_url, kube)
    env.update(
        {
            "RECONCILER_POLICY_PATH": str(policy),
            "NOTIFY_SOCKET": str(notify_socket.path),
            "WATCHDOG_USEC": "1000000",  # WatchdogSec=1s: the loop must ping every 0.5 s
        }
    )
    t0 = time.monotonic()
    daemon = DaemonProc(env, tmp_path / "daemon.log", tmp_path)
    try:
        ready_at = notify_socket.wait_for("READY=1", timeout=30)
        ready_s = ready_at - t0
        url = daemon.wait_event("serving")["url"]
        with urllib.request.urlopen(f"{url}/healthz", timeout=5) as r:
            assert r.status == 200  # READY comes after the REST API serves

        # Watchdog: pings keep coming at about half of WATCHDOG_USEC, while the loop works
        # (the first pass creates 6 pods in the rig's apiserver).
        notify_socket.drain(3.0)
        pings = [at for at, msg in notify_socket.received if msg == "WATCHDOG=1"]
        in_window = [at for at in pings if at >= ready_at]
        assert len(in_window) >= 4, notify_socket.received
        gaps = [b - a for a, b in itertools.pairwise(in_window)]
        assert max(gaps) < 1.0, gaps  # never as long as the watchdog itself

        # SIGHUP with the file unchanged: re-read, said so, nothing reloaded.
        ok_before = _metric(url, "reconciler_policy_reloads_total", result="ok")
        daemon.popen.send_signal(signal.SIGHUP)
        ev = daemon.wait_event("policy unchanged", why="SIGHUP")
        assert ev["sha256"]
        # SIGHUP after an edit: the new policy is in force (the file watch may see the edit
        # first; either way exactly one reload happens for it).
        policy.write_text(policy.read_text().replace("tickSeconds: 30", "tickSeconds: 45"))
        daemon.popen.send_signal(signal.SIGHUP)
        loaded = daemon.wait_event("policy loaded", tick_seconds=45.0)
        assert loaded["why"] in ("SIGHUP", "file changed")
        eventually(
            lambda: _metric(url, "reconciler_policy_reloads_total", result="ok") >= ok_before + 1,
            timeout=5,
            what="reloads_total{result=ok} to go up",
        )
        assert daemon.popen.poll() is None

        # SIGTERM: STOPPING=1, then a clean exit.
        term_at = time.monotonic()
        daemon.popen.send_signal(signal.SIGTERM)
        notify_socket.wait_for("STOPPING=1", timeout=15)
        assert daemon.popen.wait(20) == 0
        stop_s = time.monotonic() - term_at
        daemon.wait_event("stopped")
        print(
            f"READY after {ready_s:.1f}s; {len(in_window)} watchdog pings in 3 s; "
            f"exit {stop_s:.1f}s after SIGTERM"
        )
    finally:
        daemon.stop()
