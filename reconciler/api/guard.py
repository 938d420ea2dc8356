"""What must hold before the REST API reads a request's body: who asks, how much, how many.

An ASGI middleware around the FastAPI app (inside the CORS middleware, so a refused browser
still reads the status), because FastAPI reads and parses a body before any dependency runs:
a large POST without a token would be held in memory whole before the 401. Here:

- **Auth first.** A request that can change something (any method but GET, HEAD, OPTIONS) is
  authorised from its headers and peer address alone (`authorise`, the same rule as the
  routes': bearer token compared in constant time, or a trusted proxy's header) and refused
  with 401/403 before a byte of its body is read.
- **Body limit.** A declared `Content-Length` over `max_body_bytes` is refused with 413 unread;
  a chunked body is counted as it arrives and refused the moment it passes the limit.
- **Concurrency limit that spares the probes.** At most `max_concurrent` requests are served
  at once; one more gets 503 with `Retry-After` at once instead of queueing (a queue of
  POSTs would starve `/healthz`). `/healthz`, `/readyz` and `/metrics` are never counted or
  refused: the kubelet and Prometheus must reach a busy daemon.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["MAX_BODY_BYTES", "MAX_CONCURRENT", "PROBES", "RequestGuard"]

MAX_BODY_BYTES = 64 * 1024  # far above the largest real body (orchestrate's two overrides)
MAX_CONCURRENT = 16
PROBES = frozenset({"/healthz", "/readyz", "/metrics"})
_READ_ONLY = frozenset({"GET", "HEAD", "OPTIONS"})


class RequestGuard:
    """The ASGI middleware; `authorise(request)` returns who asks (for the log, as
    `request.state.caller`) or raises starlette's HTTPException (401/403)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        authorise: Callable[[Request], str],
        max_body_bytes: int = MAX_BODY_BYTES,
        max_concurrent: int = MAX_CONCURRENT,
        probes: Iterable[str] = PROBES,
    ) -> None:
        self.app = app
        self.authorise = authorise
        self.max_body_bytes = max_body_bytes
        self.max_concurrent = max_concurrent
        self.probes = frozenset(probes)
        self.in_flight = 0  # uvicorn runs one event loop: no lock needed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.probes:
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.max_concurrent:
            await _answer(send, 503, "busy: too many requests in flight", {"Retry-After": "1"})
            return
        self.in_flight += 1
        try:
            await self._guarded(scope, receive, send)
        finally:
            self.in_flight -= 1

    async def _guarded(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] not in _READ_ONLY:
            try:
                caller = self.authorise(Request(scope))
            except HTTPException as e:
                await _answer(send, e.status_code, str(e.detail), e.headers)
                return
            scope.setdefault("state", {})["caller"] = caller
        declared = _content_length(scope)
        if declared is not None and declared > self.max_body_bytes:
            await _answer(send, 413, self._too_large(f"{declared} bytes declared"))
            return
        await self.app(scope, self._counting(receive), send)

    def _counting(self, receive: Receive) -> Receive:
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    # Raised into the body read: the app's error handler answers 413.
                    raise HTTPException(413, self._too_large(f"more than {received} bytes"))
            return message

        return counted

    def _too_large(self, what: str) -> str:
        return f"request body too large: {what}, limit {self.max_body_bytes} bytes"


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _answer(
    send: Send, status: int, error: str, headers: dict[str, str] | None = None
) -> None:
    """A JSON error (`{"error": ...}`, as every error of the API) without touching the app."""
    body = json.dumps({"error": error}).encode()
    raw: list[tuple[bytes, bytes]] = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),  # the unread body must not be taken for the next request
    ]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    start: dict[str, Any] = {"type": "http.response.start", "status": status, "headers": raw}
    await send(start)
    await send({"type": "http.response.body", "body": body})
