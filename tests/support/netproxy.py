"""A TCP fault proxy for network faults without root tools (../shared/RIG.md): a client
connects to `FaultProxy.port` on loopback instead of the server, and the test switches the link
at run time between

- pass: bytes go through as they come;
- latency: each chunk waits `ms` before it is forwarded, in both directions (a slow link);
- black hole: nothing is forwarded and nothing answered, without a reset: existing connections
  stall and new ones are accepted (the kernel completes the handshake) but never reach the
  server, as in a partition. Bytes held meanwhile are delivered once the link heals, as TCP's
  retransmissions would;
- reset: every connection is closed with a reset (RST, SO_LINGER 0) and each new one is reset
  as soon as it is accepted.

A thread per direction of each connection and one that accepts; `close()` stops them all.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
from enum import Enum

POLL_SECONDS = 0.1  # how often a blocked thread looks at the mode and the stop flag
CHUNK = 65536


class Mode(Enum):
    PASS = "pass"
    LATENCY = "latency"
    BLACK_HOLE = "black hole"
    RESET = "reset"


def _reset(sock: socket.socket) -> None:
    """Close `sock` with a reset rather than an orderly FIN."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.close()


class _Link:
    """One client connection and, once the link lets it through, its server connection."""

    def __init__(self, client: socket.socket) -> None:
        self.client = client
        self.server: socket.socket | None = None
        self.closed = threading.Event()
        self.threads: list[threading.Thread] = []
        self._ended = 0  # directions that saw their end of stream
        self._lock = threading.Lock()

    def ended(self) -> bool:
        """One direction reached its end; True when both have (the link is done)."""
        with self._lock:
            self._ended += 1
            return self._ended == 2

    def close(self, *, reset: bool = False) -> None:
        self.closed.set()
        for sock in (self.client, self.server):
            if sock is None:
                continue
            if reset:
                _reset(sock)
            else:
                with contextlib.suppress(OSError):
                    sock.close()


class FaultProxy:
    """Listens on a free 127.0.0.1 port (or `port`) and forwards to `target` (host, port)."""

    def __init__(self, target: tuple[str, int], *, port: int = 0, name: str = "proxy") -> None:
        self.target, self.name = target, name
        self._listener = socket.create_server(("127.0.0.1", port), reuse_port=False)
        self._listener.settimeout(POLL_SECONDS)
        self.port: int = self._listener.getsockname()[1]
        self.mode = Mode.PASS
        self.delay = 0.0  # seconds per chunk, in LATENCY
        self._changed = threading.Condition()
        self._stop = threading.Event()
        self._links: set[_Link] = set()
        self._lock = threading.Lock()
        self._acceptor = threading.Thread(target=self._accept, daemon=True, name=f"{name}-accept")
        self._acceptor.start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    # ------------------------------------------------------------------ switching
    def _set(self, mode: Mode, delay: float = 0.0) -> None:
        with self._changed:
            self.mode, self.delay = mode, delay
            self._changed.notify_all()

    def pass_through(self) -> None:
        """Heal the link: forward as it comes (held bytes and held connections go on)."""
        self._set(Mode.PASS)

    def slow(self, ms: float) -> None:
        """Forward each chunk `ms` milliseconds late, both directions."""
        self._set(Mode.LATENCY, ms / 1000)

    def black_hole(self) -> None:
        """Forward nothing, answer nothing, reset nothing."""
        self._set(Mode.BLACK_HOLE)

    def reset(self) -> None:
        """Reset every connection now and every new one until the mode changes."""
        self._set(Mode.RESET)
        with self._lock:
            links = list(self._links)
        for link in links:
            link.close(reset=True)

    @property
    def connections(self) -> int:
        with self._lock:
            return sum(1 for link in self._links if not link.closed.is_set())

    # ------------------------------------------------------------------ threads
    def _wait_while(self, mode: Mode, link: _Link) -> bool:
        """Block while the link is in `mode`; False when the link or the proxy closed."""
        with self._changed:
            while self.mode is mode and not (self._stop.is_set() or link.closed.is_set()):
                self._changed.wait(POLL_SECONDS)
        return not (self._stop.is_set() or link.closed.is_set())

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # the listener was closed
            if self.mode is Mode.RESET:
                _reset(client)
                continue
            link = _Link(client)
            with self._lock:
                self._links.add(link)
            opener = threading.Thread(
                target=self._open, args=(link,), daemon=True, name=f"{self.name}-open"
            )
            link.threads.append(opener)
            opener.start()

    def _open(self, link: _Link) -> None:
        """Reach the server once the link lets this connection through, then forward."""
        if not self._wait_while(Mode.BLACK_HOLE, link):
            return
        if self.mode is Mode.RESET:
            link.close(reset=True)
            return
        try:
            link.server = socket.create_connection(self.target, timeout=5)
        except OSError:
            link.close(reset=True)  # the server is down: the client sees a refused peer
            return
        for src, dst, what in (
            (link.client, link.server, "up"),
            (link.server, link.client, "down"),
        ):
            src.settimeout(POLL_SECONDS)
            pump = threading.Thread(
                target=self._pump, args=(link, src, dst), daemon=True, name=f"{self.name}-{what}"
            )
            link.threads.append(pump)
            pump.start()

    def _pump(self, link: _Link, src: socket.socket, dst: socket.socket) -> None:
        try:
            while self._wait_while(Mode.BLACK_HOLE, link):
                try:
                    chunk = src.recv(CHUNK)
                except TimeoutError:
                    continue
                if not chunk:
                    with contextlib.suppress(OSError):
                        dst.shutdown(socket.SHUT_WR)
                    if link.ended():
                        link.close()
                    return
                # A chunk read just before the hole opened is held until it heals.
                if not self._wait_while(Mode.BLACK_HOLE, link):
                    return
                if self.mode is Mode.LATENCY:
                    time.sleep(self.delay)
                dst.sendall(chunk)
        except OSError:
            link.close(reset=self.mode is Mode.RESET)
        finally:
            if link.closed.is_set():
                with self._lock:
                    self._links.discard(link)

    def close(self) -> None:
        self._stop.set()
        with self._changed:
            self._changed.notify_all()
        with contextlib.suppress(OSError):
            self._listener.close()
        self._acceptor.join(timeout=5)
        with self._lock:
            links = list(self._links)
            self._links.clear()
        for link in links:
            link.close()
        for link in links:
            for thread in link.threads:
                thread.join(timeout=5)

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
