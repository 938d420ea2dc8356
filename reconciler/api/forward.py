"""Writes reach the leader whichever replica the Service picks: a standby forwards them.

Both replicas serve the REST API behind one Service. A write (POST, PUT, PATCH, DELETE under
`/v1/api/orchestrations/`) that reaches a standby is sent on to the leader's REST address,
which the leader publishes with its candidacy in the election
(reconciler/adapters/zookeeper/election.py), and the leader's answer is relayed: status, body,
`Content-Type`, `Retry-After`, and `X-Reconciler-Leader` naming who applied it. Reads are
served locally. An ASGI middleware inside the request guard: the caller is authorised and the
body's size checked here as on the leader, before anything is sent on.

- **Once.** The forwarded request carries `X-Reconciler-Forwarded-By: <identity>`. A daemon
  that does not lead never forwards a request that carries it (503 + Retry-After: leadership
  is moving), so a request travels at most one hop, and a client that sends the marker itself
  only gets that 503. A write is never retried: one that may have reached the leader and got
  no answer is a 502/504 saying so, never a second try.
- **No leader to send it to** (none elected yet, ZooKeeper unreachable, the leader's address
  refusing connections or not published): 503 with `Retry-After` and an error naming why.
- **Credentials** (`Authorizer.credentials_to_forward`): the caller's own bearer token as it
  came; for a user a trusted proxy named, the daemon's token and the user's name, which the
  leader logs as the caller.

Each attempt is logged (`request forwarded`, or `write refused on standby`) and counted in
`reconciler_api_forwarded_total{result}`.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import httpx
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from reconciler.api.auth import FORWARDED_BY, Authorizer
from reconciler.runtime.control import Control, Standby
from reconciler.telemetry import metrics
from reconciler.telemetry.logs import log

__all__ = ["Forward", "LeaderForwarding", "Refuse", "decide"]

LEADER_HEADER = "X-Reconciler-Leader"
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
WRITE_PREFIX = "/v1/api/orchestrations/"
RETRY_AFTER_SECONDS = 2  # about one election round on a handover
CONNECT_SECONDS = 5.0
# The leader's orchestrate blocks until its pass has run (Daemon.orchestrate's timeout): that
# wait, plus the connect allowance for the answer to travel back.
ANSWER_SECONDS = 60.0 + CONNECT_SECONDS
RELAYED_HEADERS = ("content-type", "retry-after", "x-reconciler-leader")


@dataclass(frozen=True)
class Forward:
    """Send the request to the leader's REST API at `url`."""

    url: str
    leader: str


@dataclass(frozen=True)
class Refuse:
    """Answer 503 + Retry-After here; `reason` is the metric's result label."""

    reason: str
    error: str
    leader: str | None = None


def decide(
    method: str, path: str, forwarded_by: str | None, standby: Standby | None
) -> Forward | Refuse | None:
    """What to do with a request: None serves it here (a read, or this daemon applies writes
    itself), else forward it to the leader or refuse it."""
    if method not in WRITE_METHODS or not path.startswith(WRITE_PREFIX) or standby is None:
        return None
    this = f"not the leader: this daemon ({standby.identity}) is a standby"
    if forwarded_by is not None:
        return Refuse(
            "loop",
            f"{this} and the request was already forwarded once (by {forwarded_by}): "
            "leadership is changing hands, try again",
            standby.leader,
        )
    if standby.leader is None or standby.leader == standby.identity:
        # Ourselves: we led a moment ago (the answer is cached for a second) and lost it.
        return Refuse(
            "no_leader",
            f"{this} and no leader is elected yet (or ZooKeeper cannot be reached): try again",
        )
    if standby.leader_url is None:
        return Refuse(
            "no_address",
            f"{this}; the leader is {standby.leader}, which publishes no REST address to "
            "forward the request to: set RECONCILER_API_ADVERTISE_URL on every replica",
            standby.leader,
        )
    return Forward(standby.leader_url, standby.leader)


class LeaderForwarding:
    """The ASGI middleware: `decide`, then forward, refuse, or serve (stamping the leader's
    identity on a write it serves as the leader)."""

    def __init__(self, app: ASGIApp, *, control: Control, auth: Authorizer) -> None:
        self.app = app
        self.control = control
        self.auth = auth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        method, path = scope.get("method", ""), scope.get("path", "")
        if (
            scope["type"] != "http"
            or method not in WRITE_METHODS
            or not path.startswith(WRITE_PREFIX)
        ):
            await self.app(scope, receive, send)
            return
        # Who leads may take a ZooKeeper round trip: off the event loop.
        standby = await run_in_threadpool(self.control.standby)
        decision = decide(method, path, Headers(scope=scope).get(FORWARDED_BY), standby)
        if isinstance(decision, Forward):
            assert standby is not None
            await self._forward(decision, standby.identity, scope, receive, send)
        elif isinstance(decision, Refuse):
            await self._refuse(decision, scope, send)
        else:
            await self.app(scope, receive, _stamped(send, self.control.identity()))

    async def _refuse(self, refusal: Refuse, scope: Scope, send: Send) -> None:
        metrics.API_FORWARDED.labels(refusal.reason).inc()
        log.info(
            "write refused on standby",
            method=scope["method"],
            path=scope["path"],
            reason=refusal.reason,
            leader=refusal.leader,
        )
        # The body is left unread: the connection must not carry on to a next request.
        headers = {"Retry-After": str(RETRY_AFTER_SECONDS), "Connection": "close"}
        if refusal.leader is not None:
            headers[LEADER_HEADER] = refusal.leader
        await _answer(send, 503, refusal.error, headers)

    async def _forward(
        self, to: Forward, identity: str, scope: Scope, receive: Receive, send: Send
    ) -> None:
        request = Request(scope)
        credentials = self.auth.credentials_to_forward(request)
        if credentials is None:
            refusal = Refuse(
                "no_token",
                f"not the leader: this daemon ({identity}) is a standby and cannot vouch for "
                "a user a trusted proxy named: set RECONCILER_API_TOKEN (the same on every "
                "replica) so that it can forward the request to the leader",
                to.leader,
            )
            await self._refuse(refusal, scope, send)
            return
        try:
            body = await _read_body(receive)
        except HTTPException as e:  # the guard's body limit
            await _answer(send, e.status_code, str(e.detail), e.headers)
            return
        incoming = request.headers
        headers = {k: v for k in ("content-type", "accept") if (v := incoming.get(k))}
        headers |= credentials | {FORWARDED_BY: identity}
        target = to.url + request.url.path + (f"?{request.url.query}" if request.url.query else "")
        caller = scope.get("state", {}).get("caller")
        started = time.monotonic()
        result, status = "relayed", 0
        try:
            # A client per forward: writes are rare, and nothing outlives the request. No
            # proxy from the environment: the request goes straight to the leader's pod.
            timeout = httpx.Timeout(ANSWER_SECONDS, connect=CONNECT_SECONDS)
            async with httpx.AsyncClient(timeout=timeout, trust_env=False) as client:
                answer = await client.request(
                    scope["method"], target, content=body, headers=headers
                )
        except (httpx.ConnectError, httpx.ConnectTimeout) as e:
            result, status = "unreachable", 503
            error = f"the leader {to.leader} cannot be reached at {to.url} ({_why(e)}): try again"
            await _answer(send, 503, error, _refusal_headers(to.leader))
        except httpx.HTTPError as e:
            result, status = "failed", 504 if isinstance(e, httpx.TimeoutException) else 502
            error = (
                f"forwarded to the leader {to.leader} at {to.url}, which did not answer "
                f"({_why(e)}): the write may have been applied; check before trying again"
            )
            await _answer(send, status, error, {LEADER_HEADER: to.leader})
        else:
            status = answer.status_code
            if status == 401:
                result, status = "rejected", 502
                error = (
                    f"the leader {to.leader} refused the credentials this standby forwarded: "
                    "RECONCILER_API_TOKEN must be the same on every replica"
                )
                await _answer(send, status, error, {LEADER_HEADER: to.leader})
            else:
                await _relay(send, answer, to.leader)
        metrics.API_FORWARDED.labels(result).inc()
        log.info(
            "request forwarded",
            method=scope["method"],
            path=scope["path"],
            leader=to.leader,
            url=to.url,
            result=result,
            status=status,
            by=caller,
            seconds=round(time.monotonic() - started, 3),
        )


def _stamped(send: Send, identity: str | None) -> Send:
    """`send` that names this daemon in `X-Reconciler-Leader` on the answer to a write it
    serves as the leader (unless the answer names a leader already)."""
    if identity is None:
        return send  # no election: nobody to name

    async def stamping(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", []))
            if not any(k.lower() == b"x-reconciler-leader" for k, _ in headers):
                headers.append((b"x-reconciler-leader", identity.encode()))
            message = {**message, "headers": headers}
        await send(message)

    return stamping


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


async def _relay(send: Send, answer: httpx.Response, leader: str) -> None:
    body = answer.content
    headers = [
        (k.encode(), answer.headers[k].encode()) for k in RELAYED_HEADERS if k in answer.headers
    ]
    if "x-reconciler-leader" not in answer.headers:
        headers.append((b"x-reconciler-leader", leader.encode()))  # a leader of an older release
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": answer.status_code, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _refusal_headers(leader: str) -> dict[str, str]:
    return {"Retry-After": str(RETRY_AFTER_SECONDS), LEADER_HEADER: leader}


def _why(e: Exception) -> str:
    return f"{type(e).__name__} {e}".strip()


async def _answer(send: Send, status: int, error: str, headers: dict[str, Any] | None) -> None:
    """A JSON error (`{"error": ...}`, as every error of the API)."""
    body = json.dumps({"error": error}).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode(), str(v).encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})
