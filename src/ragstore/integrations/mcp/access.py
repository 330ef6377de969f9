"""Who is calling the MCP server: the same credentials, and the same answer, as the HTTP API.

Over stdio the caller is fixed for the life of the process (the API key in RAGSTORE_API_KEY); over streamable
HTTP each request carries its own `Authorization: Bearer`. Either way the credential is turned into a
`Principal` by the store's own services (`store.keys.authenticate` for `rsk_` keys, a login's access token
by `store.users.access_token_principal`), as api/auth.py does, and it is looked up again at every
call: the key service answers from its cache for a few seconds, so a key revoked or re-scoped while a
session is open stops working within `keys.CACHE_TTL_S`, as it would over HTTP.

With RAGSTORE_AUTH=off every caller is the local operator, as in the API (the CLI refuses that on any
address but loopback).
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass

import anyio.to_thread
from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.provider import AccessToken
from starlette.types import ASGIApp, Receive, Scope, Send

from ragstore.errors import Unauthorized
from ragstore.security.authorization import LOCAL_OPERATOR, MAX_CREDENTIAL
from ragstore.security.key_format import looks_like_key
from ragstore.security.principal import Principal
from ragstore.service import RagStore

__all__ = [
    "Caller",
    "ClientAddressMiddleware",
    "KeyVerifier",
    "bearer_caller",
    "environment_caller",
    "principal_of",
]

NEEDS_CREDENTIALS = "send an API key as Authorization: Bearer rsk_..."
STDIO = "stdio"  # the client address of every stdio call: the process that started this one
_client_address: ContextVar[str] = ContextVar("ragstore_mcp_client", default="")


@dataclass(frozen=True, slots=True)
class Caller:
    """How a tool finds the principal of the call in progress, and where the call came from (for the audit
    log's and the usage log's `client_address`)."""

    principal: Callable[[], Principal]  # raises Unauthorized when the credential no longer proves anything
    address: Callable[[], str]


def principal_of(store: RagStore, credential: str) -> Principal:
    """The principal of a bearer credential, as the API's authentication middleware decides it: an API key
    (`rsk_...`) or a login's access token. Unauthorized (one message whatever the reason) otherwise."""
    credential = credential.strip()
    if not credential or len(credential) > MAX_CREDENTIAL:
        raise Unauthorized(NEEDS_CREDENTIALS)
    if looks_like_key(credential):
        return store.keys.authenticate(credential)
    found = store.users.access_token_principal(credential)
    if found is None:
        raise Unauthorized("the access token is not valid")
    return found


def environment_caller(store: RagStore, credential: str) -> Caller:
    """The stdio caller: one API key (the CLI reads it from RAGSTORE_API_KEY), checked now, so that a key
    that proves nothing stops the start rather than the first call, and again at each call."""
    if store.settings.auth == "off":
        return Caller(lambda: LOCAL_OPERATOR, lambda: STDIO)
    store.keys.authenticate(credential)
    return Caller(lambda: store.keys.authenticate(credential), lambda: STDIO)


def bearer_caller(store: RagStore) -> Caller:
    """The HTTP caller: the bearer credential of the request that carried the message (the SDK's bearer
    middleware verified it through `KeyVerifier` and keeps it in a context variable for the handler)."""

    def current() -> Principal:
        if store.settings.auth == "off":
            return LOCAL_OPERATOR
        token = get_access_token()
        if token is None:
            raise Unauthorized(NEEDS_CREDENTIALS)
        return principal_of(store, token.token)

    return Caller(current, _client_address.get)


class ClientAddressMiddleware:
    """Keeps each HTTP request's client address in a context variable. The SDK hands every message to its
    handler with the context of the request that carried it (as it does the bearer token), so a tool call
    knows where it came from, for the audit log and the usage log, as an API request does."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        client = scope.get("client") if scope["type"] == "http" else None
        token = _client_address.set(str(client[0]) if client else "")
        try:
            await self.app(scope, receive, send)
        finally:
            _client_address.reset(token)


class KeyVerifier:
    """The SDK's `TokenVerifier` over ragstore's credentials: a request whose bearer proves nothing is
    answered 401 by the SDK's `RequireAuthMiddleware` before any MCP message is read."""

    def __init__(self, store: RagStore) -> None:
        self.store = store

    async def verify_token(self, token: str) -> AccessToken | None:
        keys = self.store.keys
        try:
            # A key seen in the last seconds is answered from memory; anything else may read the database.
            principal = keys.authenticate_cached(token) if looks_like_key(token) else None
            if principal is None:
                principal = await anyio.to_thread.run_sync(principal_of, self.store, token)
        except Unauthorized:
            return None
        # The client id is the principal's audit name, so the SDK binds each HTTP session to the key (or
        # user) that opened it: another key cannot continue it.
        return AccessToken(token=token, client_id=principal.actor, scopes=[], subject=principal.actor)
