"""Rate limits and usage accounting for every HTTP request: one middleware, so a request pays one layer.

It sits INSIDE the authentication middleware (api/auth.py puts the caller's principal in
`scope["state"]["principal"]`) and OUTSIDE the cached-search fast path, so a search answered from the cache
is limited and accounted like any other. Without a principal the caller is anonymous (limited by address)
when RAGSTORE_AUTH=required, and the local operator (not limited) when auth is off, as
`api.permissions.principal_of` decides for the routes.

In order: the request's bucket and cost (security/ratelimit.py); over the limit or the cap on requests in
flight, a 429 with `Retry-After` and the `RateLimit-*` headers, answered here; else the app runs with the
`RateLimit-*` headers added to its answer, and the embedding work it causes tallied (embeddings/accounting.py).
Last, whatever the outcome, one usage row is queued for the buffered writer (security/usage.py): the route
TEMPLATE, never the raw path (a path holds collection names and ids, unbounded and possibly private).

A search batch (`POST /v1/collections/{name}/search/batch`) counts as the searches it holds: its body is read
here first (the request guard has gathered it already), the batch is admitted at the cost of its size, so a
budget that cannot cover every search refuses the whole batch, and a batch that was answered (200) is logged
as one row per search, the request's bytes, latency and embedding work shared out among them so that the rows
add up to the request. A batch refused (401, 403, 422, 429...) ran no search: it is one row, as any request.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ragstore.api.permissions import LOCAL_OPERATOR
from ragstore.api.replay import replaying
from ragstore.embeddings.accounting import tallying
from ragstore.errors import TooManyRequests
from ragstore.security.principal import Principal
from ragstore.security.ratelimit import (
    LOGIN_PATH,
    UNKNOWN,
    Admission,
    Bucket,
    batch_cost,
    body_cost,
    is_ingest,
    is_search_batch,
    route_cost,
)
from ragstore.telemetry import HTTP_DURATION, RATE_LIMITED, status_class
from ragstore.valid_text import ascii_digits

__all__ = ["ROUTE_TEMPLATE", "UNMATCHED", "MeteringMiddleware"]

ROUTE_TEMPLATE = "ragstore.route"  # a scope key: the template of a route answered before routing (fast path)
UNMATCHED = "(unmatched)"
_COLLECTION_ROUTES = "/v1/collections/{name}"
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})  # a metric label: bounded


class MeteringMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        store = getattr(getattr(scope.get("app"), "state", None), "store", None)
        if scope["type"] != "http" or store is None:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        principal: Principal | None = (scope.get("state") or {}).get("principal")
        if principal is None and store.settings.auth == "off":
            principal = LOCAL_OPERATOR
        client = scope.get("client")
        address = client[0] if client else ""
        method: str = scope["method"]
        path: str = scope["path"]
        length: int | None = None
        for name, value in scope["headers"]:
            if name == b"content-length":
                length = int(value) if ascii_digits(value) else None
                break
        limiter = store.usage.rate_limiter
        admission: Admission | None = None
        # The hot path, an API key seen before and counted in this process: its lane admits the request in a
        # few steps, without a lock or a coroutine (security/window_counter.py). Anything else, or a request the
        # lane does not admit, takes the limiter's full path, which awaits only a database read or Redis.
        cost = 1 if method != "POST" else route_cost(method, path, length)
        searches = 1
        if method == "POST" and is_search_batch(method, path):
            receive, searches = await _batch_body(receive)
            cost = max(cost, searches)
        lane = limiter.lane_of(principal) if path != LOGIN_PATH else None
        extra = lane.enter(cost) if lane is not None else None  # the RateLimit-* headers of the answer
        bucket: Bucket | None = None
        if extra is None:
            lane = None
            known = limiter.bucket_now(principal, address, path)
            if known is UNKNOWN:
                bucket = await limiter.bucket_for(principal, address, path)
            else:
                bucket = known
            if bucket is not None:
                admission = limiter.admit_now(bucket, cost) or await limiter.admit(bucket, cost)
        status = 500  # if the app raises before answering, the server's error middleware answers 500
        sent = 0
        received = length or 0
        calls = tokens = 0
        try:
            if admission is not None and not admission.allowed:
                RATE_LIMITED.inc()
                status, sent = 429, await _refuse(send, admission)
                scope.setdefault(ROUTE_TEMPLATE, _match_route(scope))
                return
            if admission is not None:
                extra = admission.headers()

            async def metered_send(message: Message) -> None:
                nonlocal status, sent
                if message["type"] == "http.response.start":
                    status = message["status"]
                    if extra:
                        message["headers"] = [*message.get("headers", ()), *extra]
                elif message["type"] == "http.response.body":
                    sent += len(message.get("body", b""))
                await send(message)

            metered_receive = receive
            if length is None and method in _BODY_METHODS:  # a chunked body: count it as it arrives

                async def metered_receive() -> Message:
                    nonlocal received
                    message = await receive()
                    received += len(message.get("body", b""))
                    return message

            with tallying() as tally:
                try:
                    await self.app(scope, metered_receive, metered_send)
                finally:
                    calls, tokens = tally.calls, tally.tokens
        finally:
            if lane is not None:
                lane.leave()
            elif admission is not None:
                limiter.release(admission)
            admitted = lane is not None or (admission is not None and admission.allowed)
            if admitted and length is None and is_ingest(method, path):
                charged = bucket or await limiter.bucket_for(principal, address, path)
                if charged is not None:
                    await limiter.charge(charged, body_cost(received) - 1)  # a chunked upload: by what it sent
            row = _row(scope, store, principal, address, status, started, received, sent, calls, tokens)
            if searches > 1 and status == 200:
                for share in _shared_out(row, searches):
                    store.usage.record(share)
            else:
                store.usage.record(row)
            method_label = row["method"] if row["method"] in _METHODS else "other"
            HTTP_DURATION.labels(row["route"], method_label, status_class(status)).observe(row["latency_ms"] / 1000)


async def _batch_body(receive: Receive) -> tuple[Receive, int]:
    """A search batch's whole body, read ahead (and handed on as if unread), and the searches it holds.

    A JSON body comes in one message, gathered and bounded by the request guard; another (a POST marked with
    X-Requested-With) is read to its end here, the guard's counting receive refusing it past the route's limit.
    """
    parts: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":  # the client went away: the app sees it too
            return replaying(message, receive), 1
        parts.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    body = b"".join(parts)
    whole: Message = {"type": "http.request", "body": body, "more_body": False}
    return replaying(whole, receive), batch_cost(body)


def _shared_out(row: dict[str, Any], count: int) -> list[dict[str, Any]]:
    """`count` rows in place of `row`, one per search of a batch: the additive measures split so that the
    rows add up to the request's (the first rows take the remainders), everything else the same."""
    rows = [dict(row) for _ in range(count)]
    for name in ("request_bytes", "response_bytes", "embedding_calls", "embedding_tokens"):
        each, rest = divmod(int(row[name]), count)
        for i, share in enumerate(rows):
            share[name] = each + (1 if i < rest else 0)
    for share in rows:
        share["latency_ms"] = round(row["latency_ms"] / count, 3)
    return rows


def _row(
    scope: Scope,
    store: Any,
    principal: Principal | None,
    address: str,
    status: int,
    started: float,
    received: int,
    sent: int,
    calls: int,
    tokens: int,
) -> dict[str, Any]:
    route = getattr(scope.get("route"), "path", None) or scope.get(ROUTE_TEMPLATE) or UNMATCHED
    collection = None
    if route.startswith(_COLLECTION_ROUTES):
        name = (scope.get("path_params") or {}).get("name")
        collection = None if name is None else str(name)[:128]
    return {
        "created_at": store.clock.now(),
        "api_key_id": principal.key_id if principal is not None else None,
        "user_id": principal.user_id if principal is not None else None,
        "method": scope["method"][:8],
        "route": route[:200],
        "collection": collection,
        "status": status,
        "latency_ms": round((time.perf_counter() - started) * 1000, 3),
        "request_bytes": received,
        "response_bytes": sent,
        "embedding_calls": calls,
        "embedding_tokens": tokens,
        "client_address": address[:64],
    }


async def _refuse(send: Send, admission: Admission) -> int:
    """The 429, in the error body every route answers with; returns the body's length."""
    error = TooManyRequests(
        f"too many requests: {admission.reason}; retry after {max(1, round(admission.retry_after_s))} s",
        retry_after_s=admission.retry_after_s,
        details={"limit": admission.limit, "remaining": admission.remaining},
    )
    body = json.dumps({"error": error.to_dict()}, ensure_ascii=False).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *admission.headers(),
    ]
    await send({"type": "http.response.start", "status": 429, "headers": headers})
    await send({"type": "http.response.body", "body": body})
    return len(body)


def _match_route(scope: Scope) -> str:
    """The template of the route a refused request was for. It never reached routing, so it is matched here
    against the documented routes (rare: only refused requests pay for it; the table is built once per app)."""
    app = scope.get("app")
    state = getattr(app, "state", None)
    table: list[tuple[re.Pattern[str], frozenset[str], str]] | None = getattr(state, "route_templates", None)
    if table is None:
        openapi = getattr(app, "openapi", None)
        paths = openapi().get("paths", {}) if callable(openapi) else {}
        table = [
            (compile_path(template)[0], frozenset(m.upper() for m in item), template)
            for template, item in paths.items()
        ]
        if state is not None:
            state.route_templates = table
    for pattern, methods, template in table:
        found = pattern.match(scope["path"])
        if found is not None and scope["method"] in methods:
            scope["path_params"] = found.groupdict()
            return template
    return UNMATCHED
