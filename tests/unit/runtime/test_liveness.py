"""Liveness follows progress (reconciler/runtime/liveness.py): `/healthz` and the systemd watchdog
ping
stop while the loop is wedged and come back when it recovers. The decision on a fake clock;
then a daemon on the fakes whose database read hangs, with the REST app and a real
NOTIFY_SOCKET datagram socket, as systemd binds it."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from structlog.testing import capture_logs

from reconciler.api.app import create_app
from reconciler.api.server import ApiServer
from reconciler.reconcile.pass_ports import Ports
from reconciler.runtime.control import Control
from reconciler.runtime.liveness import GRACE_SECONDS, Liveness, WatchdogPinger, grace_for
from reconciler.runtime.loop import Daemon, Wake, WakeReason
from tests.support.fakes import FakeClock, FakePodCache, FakePods, FakeRows, FakeStore, write_policy
from tests.support.polling import eventually

BUDGET, GRACE = 0.2, 0.3  # wedged once a pass runs 0.5 s


# ------------------------------------------------------------------ the decision


def test_a_pass_running_past_budget_and_grace_is_wedged() -> None:
    clock = FakeClock()
    alive = Liveness(30, 30, clock=clock.mono)
    alive.waiting(clock.mono() + 5)
    assert alive.problem() is None
    alive.working()
    clock.advance(59)
    assert alive.problem() is None  # a long pass within budget + grace is no hang
    clock.advance(2)
    problem = alive.problem()
    assert problem is not None and "running for 61 s" in problem and "wedged" in problem
    alive.waiting(clock.mono() + 30)  # it ended after all: alive again at once
    assert alive.problem() is None


def test_no_pass_long_after_one_was_due_is_wedged() -> None:
    clock = FakeClock()
    alive = Liveness(30, 30, clock=clock.mono)
    assert alive.problem() is None  # not started yet: nothing owed
    alive.waiting(clock.mono() + 10)  # the loop waits for its tick, due in 10 s
    clock.advance(70)
    assert alive.problem() is None  # 60 s past due is the limit, not yet over it
    clock.advance(1)
    problem = alive.problem()
    assert problem is not None and "no pass for 61 s after one was due" in problem
    alive.working()
    assert alive.problem() is None
    alive.stopped()
    assert alive.problem() == "the reconcile loop has stopped"


def test_the_grace_covers_the_longest_call() -> None:
    assert grace_for([14.0, 10.0]) == GRACE_SECONDS
    assert grace_for([124.0, 10.0]) == 124.0  # RECONCILER_DATABASE_TIMEOUT=120: 120 + 1 + 3


def test_the_watchdog_is_pinged_only_while_the_loop_progresses() -> None:
    clock = FakeClock()
    alive = Liveness(30, 30, clock=clock.mono)
    sent: list[str] = []
    pinger = WatchdogPinger(alive, 15, "reconciling x", notify=lambda *m: sent.extend(m) or True)
    alive.working()
    assert pinger.beat() and sent == ["WATCHDOG=1"]
    clock.advance(61)
    with capture_logs() as logs:
        assert not pinger.beat() and not pinger.beat()
    assert [e["event"] for e in logs] == ["watchdog ping withheld"]  # said once
    assert sent[1].startswith("STATUS=wedged: a pass has been running for 61 s")
    assert "WATCHDOG=1" not in sent[1:]
    alive.waiting(clock.mono() + 30)
    assert pinger.beat()
    assert sent[-2:] == ["STATUS=reconciling x", "WATCHDOG=1"]


# ------------------------------------------------------------------ a daemon that wedges


@dataclass
class Wedge:
    """Makes the fake database read block until released (a call without a deadline)."""

    armed: threading.Event
    inside: threading.Event
    release: threading.Event

    def __call__(self) -> None:
        if self.armed.is_set():
            self.inside.set()
            self.release.wait(30)


@pytest.fixture
def wedgeable(tmp_path: Path) -> Iterator[tuple[Daemon, Wedge]]:
    wedge = Wedge(threading.Event(), threading.Event(), threading.Event())
    rows = FakeRows({"Thing": {f"t{i}" for i in range(30)}, "Rule": {f"r{i}" for i in range(9)}})
    rows.during_read = wedge
    pods = FakePods()
    ports = Ports(store=FakeStore(), rows=rows, pods=pods, pod_cache=FakePodCache(pods))
    daemon = Daemon(
        write_policy(tmp_path, tick=3600), ports, pass_budget=BUDGET, liveness_grace=GRACE
    )
    thread = threading.Thread(target=daemon.run, name="reconcile-loop", daemon=True)
    thread.start()
    try:
        eventually(lambda: daemon.passes >= 1, timeout=10, what="the first pass")
        yield daemon, wedge
    finally:
        wedge.release.set()
        daemon.stop()
        thread.join(10)
        assert not thread.is_alive()


def wedge_it(daemon: Daemon, wedge: Wedge) -> None:
    wedge.armed.set()
    daemon.wake(Wake(WakeReason.TICK))  # a full pass: it reads the database, and hangs there
    assert wedge.inside.wait(10)


def unwedge(daemon: Daemon, wedge: Wedge) -> None:
    passes = daemon.passes
    wedge.armed.clear()
    wedge.release.set()
    eventually(lambda: daemon.passes > passes, timeout=10, what="the wedged pass to end")


def test_healthz_is_503_while_the_loop_is_wedged_and_200_when_it_recovers(
    wedgeable: tuple[Daemon, Wedge],
) -> None:
    daemon, wedge = wedgeable
    server = ApiServer(
        create_app(Control(daemon)), "127.0.0.1", 0
    )  # the REST API as `run` serves it
    server.start()
    client = httpx.Client(base_url=f"http://127.0.0.1:{server.port}", timeout=10)
    try:
        probe(daemon, wedge, client)
    finally:
        client.close()
        server.stop()


def probe(daemon: Daemon, wedge: Wedge, client: httpx.Client) -> None:
    ok = client.get("/healthz")
    assert (ok.status_code, ok.text) == (200, "ok")
    wedge_it(daemon, wedge)
    assert client.get("/healthz").status_code == 200  # within budget + grace: no verdict yet
    wedged = eventually(
        lambda: (r := client.get("/healthz")).status_code == 503 and r, timeout=5, interval=0.05
    )
    assert wedged.headers["content-type"].startswith("text/plain")
    assert "a pass has been running for" in wedged.text and "wedged" in wedged.text
    unwedge(daemon, wedge)
    back = client.get("/healthz")
    assert (back.status_code, back.text) == (200, "ok")


class NotifySocket:
    """What systemd binds for Type=notify: a datagram socket, here with a timestamp per line."""

    def __init__(self) -> None:
        # AF_UNIX paths are limited to 108 bytes: pytest's tmp_path may be longer.
        self.path = f"/tmp/reconciler-unit-notify-{os.getpid()}-{time.monotonic_ns()}.sock"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.05)
        self.got: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            for line in data.decode().split("\n"):
                self.got.append((time.monotonic(), line))

    def pings(self, since: float, until: float = float("inf")) -> int:
        return sum(1 for at, line in list(self.got) if line == "WATCHDOG=1" and since <= at < until)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()
        os.unlink(self.path)


@pytest.fixture
def notify_socket(monkeypatch: pytest.MonkeyPatch) -> Iterator[NotifySocket]:
    sock = NotifySocket()
    monkeypatch.setenv("NOTIFY_SOCKET", sock.path)
    monkeypatch.setenv("WATCHDOG_USEC", "100000")  # WatchdogSec=0.1s: a ping every 0.05 s
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    yield sock
    sock.close()


def test_no_watchdog_ping_while_the_loop_is_wedged(
    notify_socket: NotifySocket, wedgeable: tuple[Daemon, Wedge]
) -> None:
    # notify_socket comes first: the environment names the socket before the loop starts.
    daemon, wedge = wedgeable
    t0 = time.monotonic()
    # healthy, idle between ticks: pinged (every 0.05 s)
    eventually(lambda: notify_socket.pings(t0) >= 5, timeout=5, interval=0.02)
    with capture_logs() as logs:
        wedge_it(daemon, wedge)
        wedged_at = time.monotonic()
        eventually(
            lambda: any(line.startswith("STATUS=wedged") for _, line in notify_socket.got),
            timeout=5,
            interval=0.02,
        )
        silent_from = time.monotonic()
        time.sleep(0.6)  # under test: what systemd would see, no ping at all for 0.6 s
        assert notify_socket.pings(silent_from) == 0
        # ... but pings while the pass was still within budget + grace
        assert notify_socket.pings(wedged_at, wedged_at + BUDGET + GRACE - 0.1) >= 1
        unwedge(daemon, wedge)
        back = time.monotonic()
        eventually(lambda: notify_socket.pings(back) >= 3, timeout=5, interval=0.02)
    said = [e["event"] for e in logs if e["event"].startswith("watchdog ping")]
    assert said == ["watchdog ping withheld", "watchdog ping resumed"]
