"""Cached searches answered before FastAPI's routing, dependency injection and body validation.

Those layers cost about two thirds of a cached search (profiled under load); a result the process holds
needs none of them. The middleware reads the body of `POST /v1/collections/{name}/search`, checks it the
way `SearchRequest` would, and asks the store for the cached response (`RagStore.cached_search_json`,
which never waits on the network). Anything else, a miss, or a body it is not sure about goes down the
normal path with the body replayed, so every error is still FastAPI's own 4xx.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["CachedSearchMiddleware"]

log = logging.getLogger(__name__)

PATH = re.compile(r"/v1/collections/([^/]+)/search")
FIELDS = frozenset(
    {
        "query",
        "vector",
        "k",
        "filter",
        "mode",
        "offset",
        "cursor",
        "min_score",
        "explain",
        "rrf_k",
        "dense_weight",
        "lexical_weight",
        "min_coverage",
    }
)
MAX_BODY = 64 * 1024  # larger bodies (long vectors with filters) take the normal path
MAX_QUERY = 10_000


def _checked(data: Any, max_k: int) -> dict[str, Any] | None:
    """The request's fields if the body is certainly valid (the SearchRequest rules), else None.

    The options themselves are checked by `RagStore.cached_search_json` (the rules `search` applies);
    here only what would make FastAPI answer 422 instead.
    """
    if not isinstance(data, dict) or not FIELDS.issuperset(data):
        return None
    query, vector, k, filter_ = data.get("query"), data.get("vector"), data.get("k", 10), data.get("filter")
    if query is None and vector is None:
        return None
    if query is not None and (not isinstance(query, str) or len(query) > MAX_QUERY):
        return None
    if vector is not None and not isinstance(vector, list):
        return None
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= max_k:
        return None
    if filter_ is not None and not isinstance(filter_, dict):
        return None
    if data.get("cursor") is not None and not isinstance(data["cursor"], str):
        return None
    return data


class CachedSearchMiddleware:
    def __init__(self, app: ASGIApp, *, max_k: int) -> None:
        self.app = app
        self.max_k = max_k

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        match = PATH.fullmatch(scope["path"])
        length = dict(scope["headers"]).get(b"content-length")
        if match is None or length is None or not length.isdigit() or int(length) > MAX_BODY:
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
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(answer)).encode())],
                }
            )
            await send({"type": "http.response.body", "body": answer})
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    def _cached(self, scope: Scope, name: str, body: bytes) -> bytes | None:
        store = getattr(getattr(scope.get("app"), "state", None), "store", None)
        if store is None:
            return None
        try:
            fields = _checked(json.loads(body), self.max_k)
        except ValueError:
            return None
        if fields is None:
            return None
        options = {key: value for key, value in fields.items() if value is not None}
        query, vector = options.pop("query", None), options.pop("vector", None)
        answer: bytes | None = store.cached_search_json(name, query, vector=vector, **options)
        return answer
