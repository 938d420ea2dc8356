"""Child processes of the rig: started with their output in a log file, killed with the session.

Every process is started in its own process group and with PR_SET_PDEATHSIG, so that it dies
with the Python process that started it even if that one is killed; an atexit hook stops the
rest on a normal exit.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from rig.errors import RigError, log_tail

T = TypeVar("T")

_live: set[Proc] = set()
_live_lock = threading.Lock()

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # runs in the child between fork and exec
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError:
        pass


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


class Proc:
    """One long-running server process whose stdout/stderr are appended to a log file."""

    def __init__(
        self,
        server: str,
        argv: Sequence[str | Path],
        log_path: Path,
        *,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        user: str | None = None,
        stop_signal: int = signal.SIGTERM,
        stop_timeout: float = 20.0,
    ) -> None:
        self.server = server
        self.argv = [str(a) for a in argv]
        self.log_path = log_path
        self.env = env
        self.cwd = cwd
        self.user = user
        self.stop_signal = stop_signal
        self.stop_timeout = stop_timeout
        self.popen: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        if self.alive():
            return
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            log.write(f"\n==== rig {time.strftime('%H:%M:%S')} $ {' '.join(self.argv)}\n".encode())
            log.flush()
            try:
                self.popen = subprocess.Popen(
                    self.argv,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    env=self.env,
                    cwd=self.cwd,
                    user=self.user,
                    process_group=0,
                    preexec_fn=_die_with_parent,
                )
            except OSError as exc:
                raise RigError(
                    self.server, self.argv, self.log_path, f"cannot start: {exc}"
                ) from exc
        with _live_lock:
            _live.add(self)

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def check_running(self) -> None:
        """Raise RigError (with the log's last lines) if the process has exited."""
        if self.popen is not None and self.popen.poll() is not None:
            raise self.error(f"exited with code {self.popen.returncode}")

    def error(self, problem: str) -> RigError:
        return RigError(self.server, self.argv, self.log_path, problem, log_tail(self.log_path))

    def signal(self, sig: int) -> None:
        """Send `sig` to the process's group, then to every descendant: PostgreSQL's backends
        call setsid() and leave the group. The group goes first, so a SIGSTOPped parent
        forks no child that the walk would miss."""
        if self.popen is None or self.popen.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, sig)
        for pid in _descendants(self.popen.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    def stop(self, timeout: float | None = None) -> None:
        """stop_signal, then SIGKILL after the timeout (default: stop_timeout)."""
        if timeout is None:
            timeout = self.stop_timeout
        popen = self.popen
        if popen is None:
            return
        if popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(popen.pid, self.stop_signal)
            self.signal(signal.SIGCONT)  # a paused (SIGSTOPped) server acts on it only now
            try:
                popen.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(popen.pid, signal.SIGKILL)
                popen.wait(10)
        # anything the server left in its group (e.g. a forked helper)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(popen.pid, signal.SIGKILL)
        with _live_lock:
            _live.discard(self)

    def __repr__(self) -> str:
        pid = self.popen.pid if self.popen else None
        return f"Proc({self.server}, pid={pid})"


def _descendants(root: int) -> list[int]:
    """Pids of every process below `root`, from /proc (parents before children)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # exited meanwhile
            continue
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found: list[int] = []
    todo = list(children.get(root, []))
    while todo:
        pid = todo.pop(0)
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def wait_until(
    check: Callable[[], T | None],
    *,
    procs: Sequence[Proc],
    timeout: float,
    what: str,
    interval: float = 0.2,
) -> T:
    """Poll check() until it returns a truthy value; fail fast if one of procs exits."""
    deadline = time.monotonic() + timeout
    last_exc: BaseException | None = None
    while True:
        for p in procs:
            p.check_running()
        try:
            result = check()
            if result:
                return result
        except Exception as exc:
            last_exc = exc
        if time.monotonic() > deadline:
            detail = f" (last error: {last_exc!r})" if last_exc else ""
            raise procs[-1].error(f"not {what} after {timeout:.0f}s{detail}")
        time.sleep(interval)


def stop_all() -> None:
    with _live_lock:
        procs = list(_live)
    for p in reversed(procs):
        with contextlib.suppress(Exception):
            p.stop(timeout=10)


atexit.register(stop_all)
