"""FastAPI routes of the fleet page: `/` (HTML), `/ui/fleet.js`, `/ui/fleet.css`.

The page is rendered on each request from `ReadSide.status()` (the same snapshot as
`/v1/status`). Its Content-Security-Policy allows scripts, styles and fetches from this
server only and no inline code, so even a value that slipped past escaping could not run.
"""

from __future__ import annotations

from typing import Any, Protocol

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response

from reconciler.api.web import assets, page

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


class StatusSource(Protocol):
    def status(self) -> dict[str, Any]: ...


def fleet_router(read: StatusSource) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/", response_class=HTMLResponse)
    def fleet_page() -> HTMLResponse:
        return HTMLResponse(page.render(read.status()), headers=HEADERS)

    @router.get(page.SCRIPT_URL)
    def script() -> Response:
        return Response(assets.SCRIPT, media_type="text/javascript", headers=HEADERS)

    @router.get(page.STYLE_URL)
    def style() -> Response:
        return Response(assets.STYLE, media_type="text/css", headers=HEADERS)

    return router
