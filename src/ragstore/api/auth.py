"""Authentication: who is calling, decided once per request before any route, limit or cache runs.

A pure ASGI middleware (no per-request Request object, no BaseHTTPMiddleware task) that reads
- `X-API-Key: rsk_...` or `Authorization: Bearer rsk_...`: an API key (`store.keys.authenticate`);
- any other Bearer token: a login's access token (`store.users.access_token_principal`);
- the admin page's session cookie (`store.users.session_cookie_principal`). A request the cookie authenticates
  that may change something must carry the session's CSRF token in `X-CSRF-Token` (else 403): a browser
  sends the cookie on its own, the token only the page that was given it. A cookie that proves nothing
  (an expired session) counts as no credentials, so the admin page can send its visitor to the login form.
Credentials that are presented but prove nothing are a 401 with `WWW-Authenticate: Bearer`, never a silent
fall-back to anonymous; no credentials leave `request.state.principal` unset, and each route's `require(...)`
answers 401, so public routes stay public. With RAGSTORE_AUTH=off every caller is the local operator.

It also gives every request an id (a sane client `X-Request-ID` is kept, else a new one), sent back in the
`X-Request-ID` header, and runs the request as its call (`security.context.begin_call`), so the audit log
far below knows who, from where and in which request.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import re
from collections.abc import Callable
from http.cookies import CookieError, SimpleCookie
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ragstore.api.user_auth import CSRF_HEADER, SAFE_METHODS, SESSION_COOKIE
from ragstore.errors import Forbidden, RagstoreError, Unauthorized
from ragstore.security.authorization import LOCAL_OPERATOR, MAX_CREDENTIAL
from ragstore.security.context import begin_call, end_call
from ragstore.security.key_format import looks_like_key
from ragstore.security.principal import Principal, PrincipalKind

__all__ = ["SESSION_COOKIE", "AuthenticationMiddleware", "PrincipalLookup"]

PrincipalLookup = Callable[[str], Principal | None]
REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
NOBODY = Principal(PrincipalKind.ANONYMOUS, "", {})  # for the audit log of a request without credentials
WANTED = frozenset((b"x-request-id", b"x-api-key", b"authorization", b"cookie", CSRF_HEADER.encode()))
# Request ids: unique, not secret. A random prefix per process and a counter cost far less than a uuid4
# (a system call for random bytes) on every request.
_PREFIX = os.urandom(6).hex()
_COUNTER = itertools.count(1)
# Key verifications in flight, by event loop and key text: one lookup serves every request waiting for it.
_VERIFYING: dict[tuple[asyncio.AbstractEventLoop, str], asyncio.Future[Principal]] = {}


class AuthenticationMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        access_token_principal: PrincipalLookup | None = None,
        session_cookie_principal: PrincipalLookup | None = None,
        session_cookie: str = SESSION_COOKIE,
    ) -> None:
        self.app = app
        self.access_token_principal = access_token_principal
        self.session_cookie_principal = session_cookie_principal
        self.session_cookie = session_cookie

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers: dict[bytes, bytes] = {}
        for name, value in scope["headers"]:
            if name in WANTED:
                headers[name] = value
        given = headers.get(b"x-request-id", b"").decode("latin-1")
        request_id = given if given and REQUEST_ID.fullmatch(given) else f"{_PREFIX}-{next(_COUNTER):x}"
        client = scope.get("client")
        address = str(client[0]) if client else ""
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        id_header = (b"x-request-id", request_id.encode())

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), id_header]
            await send(message)

        store = scope["app"].state.store
        if store.settings.auth == "off":
            principal: Principal | None = LOCAL_OPERATOR
        else:
            try:
                bearer = headers.get(b"authorization")
                if bearer is not None and bearer.startswith(b"Bearer rsk_") and b"x-api-key" not in headers:
                    # The common case, without a coroutine when the key was verified in the last seconds.
                    principal = store.keys.recently_verified(bearer[7:]) or await _key_principal(
                        store, bearer[7:].decode("latin-1")
                    )
                else:
                    principal = await self._principal(store, headers, scope["method"])
            except (Unauthorized, Forbidden) as exc:
                token = begin_call(NOBODY, request_id, address)
                try:
                    await _refuse(exc, send_with_id)
                finally:
                    end_call(token)
                return
        if principal is not None:
            state["principal"] = principal
        token = begin_call(principal or NOBODY, request_id, address)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            end_call(token)

    async def _principal(self, store: Any, headers: dict[bytes, bytes], method: str) -> Principal | None:
        """The caller's principal; None without credentials; Unauthorized for credentials that prove nothing,
        Forbidden for a cookie-authenticated change without its CSRF token."""
        api_key = headers.get(b"x-api-key")
        authorization = headers.get(b"authorization")
        if api_key is not None:
            return await _key_principal(store, api_key.decode("latin-1").strip())
        if authorization is not None:
            scheme, _, token = authorization.decode("latin-1").strip().partition(" ")
            token = token.strip()
            if scheme.lower() != "bearer" or not token or len(token) > MAX_CREDENTIAL:
                raise Unauthorized("send credentials as Authorization: Bearer <key or token>")
            if looks_like_key(token):
                return await _key_principal(store, token)
            lookup = self.access_token_principal or store.users.access_token_principal
            found: Principal | None = await run_in_threadpool(lookup, token)  # a session check may read the database
            if found is None:
                raise Unauthorized("the access token is not valid")
            return found
        cookie = headers.get(b"cookie")
        value = None if cookie is None else _cookie(cookie.decode("latin-1"), self.session_cookie)
        if value is None:
            return None
        by_cookie = self.session_cookie_principal or store.users.session_cookie_principal
        found_user: Principal | None = await run_in_threadpool(by_cookie, value)
        if found_user is None:
            return None  # an expired admin session: the page sends its visitor to the login form
        if method not in SAFE_METHODS and not store.users.csrf_valid(
            value, headers.get(CSRF_HEADER.encode(), b"").decode("latin-1") or None
        ):
            raise Forbidden(f"this request needs the page's CSRF token in the {CSRF_HEADER} header; reload the page")
        return found_user


async def _key_principal(store: Any, text: str) -> Principal:
    keys = store.keys
    principal: Principal | None = keys.authenticate_cached(text)
    if principal is not None:
        return principal
    # Not verified in the last seconds: the database is asked, off the event loop, once per key however many
    # requests carrying it arrive meanwhile (they all lapse together every CACHE_TTL_S under load).
    slot = (asyncio.get_running_loop(), text)
    pending = _VERIFYING.get(slot)
    if pending is None:
        pending = _VERIFYING[slot] = asyncio.ensure_future(run_in_threadpool(keys.authenticate, text))
        pending.add_done_callback(lambda _: _VERIFYING.pop(slot, None))
    verified: Principal = await asyncio.shield(pending)
    return verified


def _cookie(header: str, name: str) -> str | None:
    try:
        jar = SimpleCookie(header)
    except CookieError:
        return None
    morsel = jar.get(name)
    return morsel.value if morsel is not None and morsel.value else None


async def _refuse(error: RagstoreError, send: Send) -> None:
    body = json.dumps({"error": {"code": error.code, "message": error.message}}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if isinstance(error, Unauthorized):
        headers.append((b"www-authenticate", b"Bearer"))
    await send({"type": "http.response.start", "status": error.http_status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
