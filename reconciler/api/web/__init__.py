"""The operator's fleet page at `/` of the REST server (no build step, no framework).

- `page`: renders `ReadSide.status()` as HTML, every value escaped (pure).
- `assets`: the page's stylesheet and script (a little vanilla JS), as text.
- `routes`: `fleet_router(read)`, the FastAPI routes that serve them with a strict CSP.
"""

from reconciler.api.web.routes import fleet_router

__all__ = ["fleet_router"]
