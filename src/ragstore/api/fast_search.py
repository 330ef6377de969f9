"""Cached searches answered before FastAPI's routing, dependency injection and body validation.

Those layers cost about two thirds of a cached search (profiled under load); a result the process holds
needs none of them. The middleware reads the body of `POST /v1/collections/{name}/search`, validates it
with the route's own `SearchRequest` model, and asks the store for the cached response
(`store.search.cached_json`, which never waits on the network). Anything else, a miss, or a body it is
not sure about goes down the normal path with the body replayed, so every error is still FastAPI's own 4xx.

It runs inside the authentication middleware and answers only a principal that the search route's own
`require(Role.READ, "name")` would let through; anyone else takes the normal path, which answers the 401,
403 or 404 (so a cached answer can never reach a caller the route would refuse).
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from pydantic import ValidationError
from starlette.types import ASGIApp, Receive, Scope, Send

from ragstore.api.metering import ROUTE_TEMPLATE
from ragstore.api.replay import replaying
from ragstore.schemas import SearchRequest
from ragstore.security.principal import Principal, Role
from ragstore.valid_text import ascii_digits

__all__ = ["CachedSearchMiddleware"]

log = logging.getLogger(__name__)

PATH = re.compile(r"/v1/collections/([^/]+)/search")
ROUTE = "/v1/collections/{name}/search"  # the route's template, for the usage log (api/metering.py)
MAX_BODY = 64 * 1024  # larger bodies (long vectors with filters) take the normal path


def _checked(data: Any) -> SearchRequest | None:
    """The request if FastAPI would accept the body (the same model validates both), else None."""
    try:
        request = SearchRequest.model_validate(data)
    except ValidationError:
        return None
    if request.query is None and request.vector is None:
        return None  # the full path says what is missing
    return request


def _may_read(scope: Scope, auth: str, collection: str) -> bool:
    """The search route's rule (api/permissions.py): auth off, or a principal holding read on the collection."""
    if auth == "off":
        return True
    principal: Principal | None = scope.get("state", {}).get("principal")
    return principal is not None and principal.allows(Role.READ, collection)


class CachedSearchMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        match = PATH.fullmatch(scope["path"])
        length = dict(scope["headers"]).get(b"content-length")
        if match is None or length is None or not ascii_digits(length) or int(length) > MAX_BODY:
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        try:
            answer = self._cached(scope, match.group(1), body)
        except Exception:  # whatever went wrong here, the normal path answers (and reports) it
            log.debug("cached-search fast path failed; taking the normal path", exc_info=True)
            answer = None
        if answer is not None:
            scope[ROUTE_TEMPLATE] = ROUTE  # what routing would have set, for the usage log
            scope["path_params"] = {"name": match.group(1)}
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(answer)).encode())],
                }
            )
            await send({"type": "http.response.body", "body": answer})
            return
        await self.app(scope, replaying({"type": "http.request", "body": body, "more_body": False}, receive), send)

    def _cached(self, scope: Scope, name: str, body: bytes) -> bytes | None:
        store = getattr(getattr(scope.get("app"), "state", None), "store", None)
        if store is None or not _may_read(scope, store.settings.auth, name):
            return None
        try:
            request = _checked(json.loads(body))
        except ValueError:
            return None
        if request is None:
            return None
        answer: bytes | None = store.search.cached_json(name, request)
        return answer
