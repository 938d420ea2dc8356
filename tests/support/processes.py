"""`reconciler run` as real processes on the rig, several at once (leader election tests and
bench/failover.py): start, ask /v1/status, read the JSON log, and kill, stop or continue one.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from rig.process import free_port
from tests.support.fleet import daemon_env
from tests.support.polling import eventually

RECONCILER = str(Path(sys.executable).parent / "reconciler")


class DaemonProcess:
    """One `reconciler run` subprocess with its own identity, API port and JSON log."""

    def __init__(
        self,
        tmp_path: Path,
        zk_hosts: str,
        pg_url: str,
        kube: Any,
        policy: Path,
        identity: str,
        *,
        session_timeout: float = 6.0,
        env: dict[str, str] | None = None,
    ) -> None:
        """`env`: more settings (RECONCILER_*), over the rig's defaults."""
        self.identity = identity
        self.port = free_port()
        work = tmp_path / identity
        work.mkdir(parents=True, exist_ok=True)
        settings = {
            **daemon_env(work, zk_hosts, pg_url, kube),
            "RECONCILER_POLICY_PATH": str(policy),
            "RECONCILER_API_PORT": str(self.port),
            "RECONCILER_IDENTITY": identity,
            "RECONCILER_ZK_SESSION_TIMEOUT": str(session_timeout),
            **(env or {}),
        }
        self.lines: list[str] = []
        self.received: list[float] = []  # when each line was read, on the machine's clock
        # For a daemon whose wall clock is stepped (tests/chaos/clock.py): a log stamp and when
        # it was read -> the stamp on the machine's clock.
        self.true_time: Callable[[float, float], float] | None = None
        self.proc = subprocess.Popen(
            [RECONCILER, "run"],
            env=settings,
            cwd=work,  # no .env from the repository
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.received.append(time.time())  # first: `events` zips the two
            self.lines.append(line)

    def events(self, after: float = 0.0) -> list[dict[str, Any]]:
        """Its JSON log events stamped after `after` (Unix seconds). By the stamp, not by the
        position: lines written before a SIGSTOP may still be in the pipe after it."""
        out = []
        for line, received in zip(list(self.lines), list(self.received), strict=False):
            try:
                event = json.loads(line)
            except ValueError:
                continue  # a line a library wrote outside structlog
            stamp = datetime.fromisoformat(str(event.get("timestamp", "")).replace("Z", "+00:00"))
            at = stamp.timestamp()
            if self.true_time is not None:
                at = self.true_time(at, received)
            if at > after:
                out.append(event)
        return out

    def applied(self, after: float = 0.0) -> list[dict[str, Any]]:
        """Operations this daemon applied (ZooKeeper writes and pod calls that went out)."""
        return [e for e in self.events(after) if e.get("event") == "operation applied"]

    def status(self, timeout: float = 2.0) -> dict[str, Any] | None:
        try:
            r = httpx.get(f"http://127.0.0.1:{self.port}/v1/status", timeout=timeout)
        except httpx.HTTPError:
            return None
        return r.json() if r.status_code == 200 else None

    def role(self) -> str | None:
        status = self.status()
        return status["leadership"]["role"] if status else None

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def signal(self, sig: int) -> None:
        os.kill(self.proc.pid, sig)

    def close(self) -> None:
        if self.alive:
            self.signal(signal.SIGCONT)
            self.signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._reader.join(timeout=5)


def leaders(daemons: list[DaemonProcess]) -> list[DaemonProcess]:
    """The daemons whose status says they lead (a dead or stopped one says nothing)."""
    return [d for d in daemons if d.alive and d.role() == "leader"]


def wait_for_leader(daemons: list[DaemonProcess], timeout: float = 60.0) -> DaemonProcess:
    def one_leader() -> DaemonProcess:
        found = leaders(daemons)
        assert len(found) == 1, f"no single leader: {[d.role() for d in daemons]}"
        return found[0]

    return eventually(one_leader, timeout=timeout, interval=0.05, what="a single leader")
