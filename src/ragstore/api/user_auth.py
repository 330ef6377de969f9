"""Users over HTTP: the admin page's cookie session, its CSRF header, and the 429 of a locked account.

The authentication middleware (api/auth.py) turns a request into a principal: a Bearer token that is not
an API key (`rsk_...`) is an access token from `POST /v1/auth/login`, and the cookie `ragstore_session`
(`HttpOnly`, `SameSite=Strict`, `Path=/admin`, `Secure` when the request came over TLS) an admin page
session. A request the cookie authenticates that may change something (any method but GET, HEAD and
OPTIONS) must carry the session's CSRF token in `X-CSRF-Token`, or it is refused with 403: the browser sends
the cookie on its own, the token only the page that was given it. Keys and access tokens are never sent on
their own, so they need none. This module holds the names and the cookie helpers both sides use.
"""

from __future__ import annotations

from fastapi import Request, Response
from fastapi.responses import JSONResponse

from ragstore.errors import TooManyRequests
from ragstore.service import RagStore

__all__ = [
    "COOKIE_PATH",
    "CSRF_HEADER",
    "LOGIN_COOKIE",
    "SESSION_COOKIE",
    "clear_cookie",
    "set_cookie",
    "too_many",
]

SESSION_COOKIE = "ragstore_session"
LOGIN_COOKIE = "ragstore_login"  # the login form's nonce, which its CSRF token is bound to
COOKIE_PATH = "/admin"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
API_KEY_PREFIX = "rsk_"


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
