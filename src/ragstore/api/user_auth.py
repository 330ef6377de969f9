"""Users over HTTP: the access token (`Authorization: Bearer <JWT>`) and the admin page's cookie session.

The authentication middleware (api/auth.py) turns each request into a principal; for users it calls
`user_principal(request)`, which reads
- a Bearer token that is not an API key (`rsk_...`) as an access token from `POST /v1/auth/login`, and
- the admin page's cookie `ragstore_session` (`HttpOnly`, `SameSite=Strict`, `Path=/admin`, `Secure` when the
  request came over TLS). A request that the cookie authenticates and that may change something (any method
  but GET, HEAD and OPTIONS) must carry the session's CSRF token in `X-CSRF-Token`, or it is refused with
  403 (`Forbidden`): the cookie is sent by the browser on its own, the token only by the page that was
  given it. Keys and access tokens are never sent on their own, so they need none.
Until that middleware exists, the admin page and `/v1/auth/me` call `request_principal`, which asks the
same function when the middleware has not set `request.state.principal`.
"""

from __future__ import annotations

from fastapi import Request, Response
from fastapi.responses import JSONResponse

from ragstore.api.permissions import principal_of
from ragstore.errors import Forbidden, TooManyRequests
from ragstore.security.principal import Principal
from ragstore.service import RagStore

__all__ = [
    "COOKIE_PATH",
    "CSRF_HEADER",
    "LOGIN_COOKIE",
    "SESSION_COOKIE",
    "bearer_token",
    "clear_cookie",
    "request_principal",
    "set_cookie",
    "too_many",
    "user_principal",
]

SESSION_COOKIE = "ragstore_session"
LOGIN_COOKIE = "ragstore_login"  # the login form's nonce, which its CSRF token is bound to
COOKIE_PATH = "/admin"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
API_KEY_PREFIX = "rsk_"


def bearer_token(request: Request) -> str | None:
    """The token of `Authorization: Bearer <token>`, if that is what the header says."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return (token.strip() or None) if scheme.lower() == "bearer" else None


def user_principal(request: Request) -> Principal | None:
    """The user an access token or the admin cookie proves (None: neither proves anything).

    Raises Forbidden for a cookie-authenticated request that may change something without the CSRF token.
    """
    users = _store(request).users
    token = bearer_token(request)
    if token is not None and not token.startswith(API_KEY_PREFIX):
        return users.access_token_principal(token)
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        return None
    principal = users.session_cookie_principal(cookie)
    if (
        principal is not None
        and request.method not in SAFE_METHODS
        and not users.csrf_valid(cookie, request.headers.get(CSRF_HEADER))
    ):
        raise Forbidden(f"this request needs the page's CSRF token in the {CSRF_HEADER} header; reload the page")
    return principal


def request_principal(request: Request) -> Principal | None:
    """The principal the middleware found, else the user's own proof, else the local operator when auth is off."""
    found: Principal | None = getattr(request.state, "principal", None)
    if found is not None:
        return found
    return user_principal(request) or principal_of(request)


def set_cookie(response: Response, request: Request, name: str, value: str, max_age_s: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age_s,
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def clear_cookie(response: Response, request: Request, name: str) -> None:
    response.delete_cookie(
        name, path=COOKIE_PATH, httponly=True, samesite="strict", secure=request.url.scheme == "https"
    )


def too_many(exc: TooManyRequests) -> JSONResponse:
    """The 429 with the `Retry-After` header (whole seconds) a client waits by."""
    return JSONResponse(
        status_code=exc.http_status,
        content={"error": exc.to_dict()},
        headers={"Retry-After": str(max(1, round(exc.retry_after_s)))},
    )


def _store(request: Request) -> RagStore:
    store: RagStore = request.app.state.store
    return store
