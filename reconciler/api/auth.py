"""Who may POST: the bearer token (RECONCILER_API_TOKEN) or a user a trusted proxy names, and
never a page of another origin riding on a proxy's cookie (`access.py`).

Who asked goes to `request.state.caller` for the log: "token", the user a trusted proxy names,
or "anyone" when POSTs are open (neither a token nor a trusted header is configured).
"""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from reconciler.api.access import BrowserAccess, foreign_origin, proxy_user

# Module level: with `from __future__ import annotations` FastAPI resolves a dependency's
# string annotation from the module's globals.
bearer = HTTPBearer(auto_error=False, description="RECONCILER_API_TOKEN, when it is set")


class Authorizer:
    def __init__(self, token: str | None, access: BrowserAccess) -> None:
        self.token = token
        self.access = access

    def require_token(
        self,
        request: Request,
        creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> None:
        """The route dependency of every POST: authorise, or 401/403."""
        request.state.caller = self.caller(request, creds)

    def caller(self, request: Request, creds: HTTPAuthorizationCredentials | None) -> str:
        token, access = self.token, self.access
        if token is None and not access.requires_auth:
            return "anyone"
        if (
            token is not None
            and creds is not None
            and secrets.compare_digest(creds.credentials.encode(), token.encode())
        ):
            return "token"
        user = proxy_user(request, access)
        if user is None:
            raise HTTPException(
                401,
                "a bearer token is required"
                + (
                    f" (or {access.trusted_header} from a trusted proxy)"
                    if access.trusted_header
                    else ""
                ),
                headers={"WWW-Authenticate": "Bearer"},
            )
        origin = foreign_origin(request, access)
        if origin is not None:
            # The proxy's cookie rides along on any page's request: refuse foreign pages.
            raise HTTPException(403, f"cross-origin request from {origin} refused")
        return user

    def authorise(self, request: Request) -> str:
        """`caller` from the headers alone: the request guard runs it before the body is read."""
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        creds = (
            HTTPAuthorizationCredentials(scheme=scheme, credentials=value.strip())
            if scheme.lower() == "bearer" and value.strip()
            else None
        )
        return self.caller(request, creds)
