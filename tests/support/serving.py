"""Serving a rig server to the tests: started, handed over, always closed."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TypeVar

from rig.servers import Server

S = TypeVar("S", bound=Server)


def serve(server: S, started: list[Server] | None = None) -> Iterator[S]:
    """For a fixture's `yield from`: start `server`, yield it, close it. A failed start keeps
    the server's dir for its log. `started`: where the server is listed while it serves
    (conftest's session servers, restarted after a test that stopped one)."""
    try:
        server.start()
    except BaseException:
        server.close(keep_dir=True)
        raise
    if started is not None:
        started.append(server)
    try:
        yield server
    finally:
        if started is not None:
            started.remove(server)
        server.close()
