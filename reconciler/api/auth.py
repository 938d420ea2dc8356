"""Who may POST: the bearer token (RECONCILER_API_TOKEN) or a user a trusted proxy names, and
never a page of another origin riding on a proxy's cookie (`access.py`).

Who asked goes to `request.state.caller` for the log: "token", the user a trusted proxy names,
or "anyone" when POSTs are open (neither a token nor a trusted header is configured).

A standby forwards a write to the leader (`forward.py`) with the credentials of
`credentials_to_forward`: the caller's bearer token as it came, or, for a user a trusted proxy
named, the daemon's own token (the same on every replica) and the user's name in
`X-Reconciler-Forwarded-User`. The leader takes that name as the caller only beside the valid
token *and* the forwarded marker (`X-Reconciler-Forwarded-By`): a client without the token
cannot name anyone, and one with it could already do everything.
"""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from reconciler.api.access import MAX_USER_LENGTH, BrowserAccess, foreign_origin, proxy_user

FORWARDED_BY = "X-Reconciler-Forwarded-By"  # the standby that forwarded the request
FORWARDED_USER = "X-Reconciler-Forwarded-User"  # the user a trusted proxy named to it

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
        if self._token_matches(creds):
            return _forwarded_user(request) or "token"
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
        return self.caller(request, _bearer_of(request))

    def credentials_to_forward(self, request: Request) -> dict[str, str] | None:
        """Headers that authorise this request, already authorised here, at the leader. None
        when a trusted proxy vouched for the caller and no token is set to vouch in its turn."""
        authorization = request.headers.get("authorization")
        as_sent = {"Authorization": authorization} if authorization else {}
        if self.token is None and not self.access.requires_auth:
            return as_sent  # POSTs are open: nothing to vouch for
        if self._token_matches(_bearer_of(request)):
            return as_sent
        user = proxy_user(request, self.access)
        if user is None:
            return as_sent  # not authorised here: the guard refused it before this
        if self.token is None:
            return None
        return {"Authorization": f"Bearer {self.token}", FORWARDED_USER: user}

    def _token_matches(self, creds: HTTPAuthorizationCredentials | None) -> bool:
        return (
            self.token is not None
            and creds is not None
            and secrets.compare_digest(creds.credentials.encode(), self.token.encode())
        )


def _bearer_of(request: Request) -> HTTPAuthorizationCredentials | None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return HTTPAuthorizationCredentials(scheme=scheme, credentials=value.strip())
    return None


def _forwarded_user(request: Request) -> str | None:
    """The user a standby forwarded the request for; asked only once the token matched."""
    user = request.headers.get(FORWARDED_USER, "").strip()
    if not request.headers.get(FORWARDED_BY) or not user or len(user) > MAX_USER_LENGTH:
        return None
    return user
