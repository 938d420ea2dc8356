"""The REST API's guard (reconciler.api.guard): auth and size before the body is read, a
concurrency limit that spares the probes; and the start-up checks that keep an open API off
the network (reconciler.cli.preflight)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from starlette.exceptions import HTTPException
from starlette.requests import Request

from reconciler.api.guard import RequestGuard
from reconciler.cli.preflight import Failure, check_api_exposure, check_api_tls
from reconciler.config.settings import Settings

TOKEN = "s3cret"


def authorise(request: Request) -> str:
    if request.headers.get("authorization") == f"Bearer {TOKEN}":
        return "token"
    raise HTTPException(401, "a bearer token is required", headers={"WWW-Authenticate": "Bearer"})


class Exchange:
    """One request through the guard: what the app saw, what went back, how much was read."""

    def __init__(self, body_chunks: list[bytes]) -> None:
        self.chunks = list(body_chunks)
        self.reads = 0
        self.sent: list[dict[str, Any]] = []
        self.app_called = False

    async def receive(self) -> dict[str, Any]:
        self.reads += 1
        chunk = self.chunks.pop(0) if self.chunks else b""
        return {"type": "http.request", "body": chunk, "more_body": bool(self.chunks)}

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)

    @property
    def status(self) -> int:
        return int(self.sent[0]["status"])


async def reading_app(scope: Any, receive: Any, send: Any) -> None:
    """Reads the whole body, then answers 200 (as FastAPI does before any dependency)."""
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def request(
    guard: RequestGuard,
    method: str = "POST",
    path: str = "/v1/api/orchestrations/Thing/orchestrate",
    headers: dict[str, str] | None = None,
    body: list[bytes] | None = None,
) -> Exchange:
    exchange = Exchange(body or [])
    raw = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "headers": raw,
        "query_string": b"",
        "client": ("10.0.0.9", 5555),
    }

    async def app(scope: Any, receive: Any, send: Any) -> None:
        exchange.app_called = True
        await reading_app(scope, receive, send)

    guard.app = app
    asyncio.run(guard(scope, exchange.receive, exchange.send))
    return exchange


def make_guard(**kw: Any) -> RequestGuard:
    return RequestGuard(reading_app, authorise=authorise, **kw)


def test_a_post_without_a_token_is_refused_before_its_body_is_read() -> None:
    ex = request(make_guard(), headers={"content-length": "200000000"}, body=[b"x" * 1000])
    assert ex.status == 401 and ex.reads == 0 and not ex.app_called
    assert (b"www-authenticate", b"Bearer") in ex.sent[0]["headers"]


def test_a_declared_body_over_the_limit_is_refused_unread_even_with_the_token() -> None:
    headers = {"authorization": f"Bearer {TOKEN}", "content-length": "2000"}
    ex = request(make_guard(max_body_bytes=1000), headers=headers, body=[b"x" * 2000])
    assert ex.status == 413 and ex.reads == 0 and not ex.app_called


def test_a_chunked_body_is_cut_off_once_it_passes_the_limit() -> None:
    guard = make_guard(max_body_bytes=1000)
    with pytest.raises(HTTPException) as refused:
        request(guard, headers={"authorization": f"Bearer {TOKEN}"}, body=[b"x" * 600] * 10)
    assert refused.value.status_code == 413  # raised into the app's body read: it answers 413


def test_a_post_with_the_token_and_a_small_body_goes_through() -> None:
    headers = {"authorization": f"Bearer {TOKEN}", "content-length": "2"}
    ex = request(make_guard(), headers=headers, body=[b"{}"])
    assert ex.status == 200 and ex.app_called


def test_reads_need_no_token() -> None:
    assert request(make_guard(), method="GET", path="/v1/status").status == 200


def test_past_the_concurrency_limit_requests_get_503_but_probes_always_pass() -> None:
    guard = make_guard(max_concurrent=2)
    guard.in_flight = 2  # two slow requests being served
    busy = request(guard, method="GET", path="/v1/status")
    assert busy.status == 503 and not busy.app_called
    assert (b"retry-after", b"1") in busy.sent[0]["headers"]
    for probe in ("/healthz", "/readyz", "/metrics"):
        assert request(guard, method="GET", path=probe).status == 200
    guard.in_flight = 1
    assert request(guard, method="GET", path="/v1/status").status == 200
    assert guard.in_flight == 1  # its slot given back


def settings(**kw: Any) -> Settings:
    return Settings(_env_file=None, **kw)  # type: ignore[call-arg]


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.1.2.3"])
def test_an_api_beyond_loopback_without_a_token_refuses_to_start(host: str) -> None:
    with pytest.raises(Failure, match="RECONCILER_API_TOKEN"):
        check_api_exposure(settings(api_host=host))


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1"])
def test_an_api_on_loopback_may_stay_open(host: str) -> None:
    check_api_exposure(settings(api_host=host))


def test_a_token_or_a_trusted_proxy_header_lets_the_api_listen_anywhere() -> None:
    check_api_exposure(settings(api_host="0.0.0.0", api_token="t"))
    check_api_exposure(
        settings(
            api_host="0.0.0.0",
            api_trusted_header="X-Forwarded-User",
            api_trusted_proxies="10.0.0.5",
        )
    )


def test_an_empty_token_is_an_error_not_off() -> None:
    with pytest.raises(ValueError, match="empty"):
        settings(api_token=" ")


def test_tls_needs_both_files_and_says_which_cannot_be_used(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="go together"):
        settings(api_tls_cert_file=tmp_path / "c.pem")
    missing = settings(api_tls_cert_file=tmp_path / "c.pem", api_tls_key_file=tmp_path / "k.pem")
    with pytest.raises(Failure, match="RECONCILER_API_TLS_CERT_FILE"):
        check_api_tls(missing)
    assert check_api_tls(settings()) is None
