"""tests/support/netproxy.py: each mode of the TCP fault proxy, against a tiny echo server."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from tests.support.netproxy import FaultProxy
from tests.support.polling import eventually


class EchoServer:
    """Sends back what it receives, a thread per connection."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.sock.getsockname()[1]
        self.accepted = 0
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            threading.Thread(target=self._echo, args=(conn,), daemon=True).start()

    @staticmethod
    def _echo(conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):
            while data := conn.recv(4096):
                conn.sendall(data)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def proxy() -> Iterator[tuple[FaultProxy, EchoServer]]:
    echo = EchoServer()
    with FaultProxy(("127.0.0.1", echo.port), name="test") as p:
        yield p, echo
    echo.close()


def connect(proxy: FaultProxy, timeout: float = 2.0) -> socket.socket:
    return socket.create_connection(("127.0.0.1", proxy.port), timeout=timeout)


def round_trip(sock: socket.socket, payload: bytes = b"ping") -> bytes:
    sock.sendall(payload)
    got = b""
    while len(got) < len(payload):
        chunk = sock.recv(4096)
        if not chunk:
            break
        got += chunk
    return got


def test_pass_forwards_both_ways(proxy: tuple[FaultProxy, EchoServer]) -> None:
    p, _ = proxy
    with connect(p) as sock:
        assert round_trip(sock, b"hello") == b"hello"
        assert round_trip(sock, b"x" * 200_000) == b"x" * 200_000


def test_latency_delays_each_direction(proxy: tuple[FaultProxy, EchoServer]) -> None:
    p, _ = proxy
    with connect(p) as sock:
        started = time.monotonic()
        round_trip(sock)
        fast = time.monotonic() - started
        p.slow(300)
        started = time.monotonic()
        assert round_trip(sock) == b"ping"
        slow = time.monotonic() - started
    assert fast < 0.3
    assert slow >= 0.6  # 300 ms up and 300 ms down


def test_black_hole_stalls_without_a_reset_and_heals(
    proxy: tuple[FaultProxy, EchoServer],
) -> None:
    p, echo = proxy
    with connect(p, timeout=0.5) as old:
        assert round_trip(old) == b"ping"
        p.black_hole()
        old.sendall(b"held")
        with pytest.raises(TimeoutError):  # no answer, and no reset either
            old.recv(4096)
        accepted = echo.accepted
        with connect(p, timeout=0.5) as new:  # the handshake completes ...
            new.sendall(b"lost?")
            with pytest.raises(TimeoutError):  # ... and then nothing
                new.recv(4096)
            assert echo.accepted == accepted  # the server never saw it
            p.pass_through()
            new.settimeout(2)
            assert new.recv(4096) == b"lost?"
        old.settimeout(2)
        assert old.recv(4096) == b"held"  # held bytes go on once the link heals


def test_reset_closes_connections_and_refuses_new_ones(
    proxy: tuple[FaultProxy, EchoServer],
) -> None:
    p, _ = proxy
    with connect(p) as old:
        assert round_trip(old) == b"ping"
        p.reset()
        with pytest.raises(ConnectionResetError):  # a reset, not an orderly end (b"")
            old.recv(4096)
    # The reset may come while connecting or at the first read, whichever the kernel sees first.
    with pytest.raises((ConnectionResetError, ConnectionRefusedError)), connect(p) as new:
        new.sendall(b"x")
        new.recv(4096)
    p.pass_through()
    with connect(p) as again:
        assert round_trip(again) == b"ping"


def test_close_stops_every_thread(proxy: tuple[FaultProxy, EchoServer]) -> None:
    p, _ = proxy
    socks = [connect(p) for _ in range(3)]
    for s in socks:
        assert round_trip(s) == b"ping"
    p.black_hole()
    before = {t for t in threading.enumerate() if t.name.startswith("test-")}
    assert before
    p.close()
    eventually(lambda: not any(t.is_alive() for t in before), timeout=5, what="the proxy's threads")
    for s in socks:
        s.close()
