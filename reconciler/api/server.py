"""The REST API's HTTP server: uvicorn in a thread beside the loop (HTTPS when given a
certificate)."""

from __future__ import annotations

import threading

import uvicorn
from fastapi import FastAPI

__all__ = ["ApiServer"]


class ApiServer:
    """uvicorn in a daemon thread; stop() shuts it down gracefully."""

    def __init__(
        self, app: FastAPI, host: str, port: int, tls: tuple[str, str] | None = None
    ) -> None:
        """`tls`: (certificate file, key file) to serve HTTPS."""
        cert, key = tls or (None, None)
        # proxy_headers off: the client address stays the TCP peer, never X-Forwarded-For
        # (access.proxy_user trusts a header by that address).
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_config=None,
            access_log=False,
            lifespan="off",
            proxy_headers=False,
            ssl_certfile=cert,
            ssl_keyfile=key,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="api", daemon=True)

    def start(self, timeout: float = 10.0) -> None:
        self.thread.start()
        deadline = threading.Event()
        for _ in range(int(timeout / 0.05)):
            if self.server.started:
                return
            deadline.wait(0.05)
        raise RuntimeError("the REST API did not start")

    @property
    def port(self) -> int:
        sockets = [s for server in self.server.servers for s in server.sockets]
        return sockets[0].getsockname()[1] if sockets else self.server.config.port

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
