"""Who may call the REST API from a browser, and how a proxy in front of it vouches for a user.

The old admin UI is served from its own origin and calls the daemon with
`fetch(..., {credentials: 'include'})`. Two things make that work:

- **CORS** (`RECONCILER_API_CORS_ORIGINS`): Starlette's CORSMiddleware for an exact list of
  origins, credentials allowed, preflights answered (methods GET and POST, headers
  `Authorization` and `Content-Type`, cached 10 minutes; `X-Reconciler-Leader` readable). An
  origin not on the list gets no `Access-Control-Allow-Origin`, so the browser refuses. An
  empty list adds no middleware at all: the API answers same-origin calls only.
- **An authenticating reverse proxy** (`RECONCILER_API_TRUSTED_HEADER`, the "auth proxy"
  pattern of oauth2-proxy, nginx `auth_request` or Grafana's `auth.proxy`): the proxy signs
  the operator in (its own cookie), then forwards the request with a header naming the user.
  The daemon believes that header only on a connection whose TCP peer is one of
  `RECONCILER_API_TRUSTED_PROXIES`; `X-Forwarded-For` is never read (uvicorn's proxy-header
  rewriting is off in `api.ApiServer`), so nobody can claim to be the proxy. The bearer token
  keeps working beside it.

A proxy's session cookie is an ambient credential: a page from any origin could make the
browser send a "simple" POST (no preflight) with it. So a POST authorised by the proxy's header
that carries an `Origin` must come from the daemon's own origin (same host) or from an allowed
origin, else 403 (OWASP's origin check against CSRF). A bearer token is never ambient.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware

__all__ = ["MAX_USER_LENGTH", "BrowserAccess", "add_cors", "foreign_origin", "proxy_user"]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
MAX_USER_LENGTH = 256  # a user name longer than this is not one a proxy set


@dataclass(frozen=True, slots=True)
class BrowserAccess:
    """The settings above, as `api.create_app` takes them."""

    cors_origins: tuple[str, ...] = ()
    trusted_header: str | None = None
    trusted_proxies: tuple[Network, ...] = ()

    @classmethod
    def from_settings(cls, settings: Any) -> BrowserAccess:
        """From `reconciler.config.settings.Settings` (which has validated every value)."""
        return cls(
            tuple(settings.cors_origins),
            settings.api_trusted_header or None,
            tuple(settings.trusted_proxies),
        )

    @property
    def requires_auth(self) -> bool:
        """A trusted header set means POSTs are meant to be authenticated, token or not."""
        return self.trusted_header is not None


def add_cors(app: FastAPI, origins: Sequence[str]) -> None:
    """Answer browsers from `origins` (exact, credentials allowed); nothing when empty."""
    if not origins:
        return
    app.add_middleware(
        CORSMiddleware,
        allow_origins=list(origins),
        allow_credentials=True,
        allow_methods=["GET", "POST"],
        allow_headers=["Authorization", "Content-Type"],
        expose_headers=["X-Reconciler-Leader"],
        max_age=600,
    )


def proxy_user(request: Request, access: BrowserAccess) -> str | None:
    """The user a trusted proxy vouches for on this request, or None."""
    if access.trusted_header is None or request.client is None:
        return None
    user = request.headers.get(access.trusted_header, "").strip()
    if not user or len(user) > MAX_USER_LENGTH:
        return None
    try:
        peer = ipaddress.ip_address(request.client.host)
    except ValueError:
        return None  # not an IP peer (a Unix socket): no proxy of ours
    if not any(peer in network for network in access.trusted_proxies):
        return None
    return user


def foreign_origin(request: Request, access: BrowserAccess) -> str | None:
    """The request's `Origin` if it is neither the daemon's own (same host) nor allowed."""
    origin = request.headers.get("origin")
    if origin is None:
        return None  # not sent by a browser's cross-origin machinery
    if origin.rstrip("/").lower() in access.cors_origins:
        return None
    own = request.headers.get("host", "").lower()
    if own and urlsplit(origin.lower()).netloc == own:
        return None
    return origin
