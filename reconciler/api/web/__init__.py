"""The operator's fleet page at `/` of the REST server (no build step, no framework).

- `page`: renders `ReadSide.status()` as HTML, every value escaped (pure).
- `assets`: the page's stylesheet and script (a little vanilla JS), as text.
- `routes`: `fleet_router(read)`, the FastAPI routes that serve them with a strict CSP.

May import: `reconciler.runtime.status` (the read side it renders) and FastAPI.
"""
