"""Request bodies bounded while they stream in, and JSON bodies bounded in shape before anything parses them.

A body is counted as `receive()` hands it over, so a request past its route's limit is answered 413 the
moment the limit is passed, whether it declared a Content-Length or came chunked; nothing reads (or spools
to disk, as multipart parsing does) a byte beyond it. JSON bodies (small by their limit) are gathered here,
checked for nesting depth with a byte scan (the `json` module recurses once per level, and 100,000 levels
raise RecursionError, a 500), then replayed to the app. Other bodies (multipart uploads) stream through,
counted: the first chunk past the limit raises PayloadTooLarge, which the app's error handler (or this
middleware, if nothing inside answered yet) turns into the documented 413.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ragstore.api.errors import ErrorResponse
from ragstore.api.origin import WRITE_HEADER, host_name, host_refusal, is_json_type, write_refusal
from ragstore.api.replay import replaying
from ragstore.config import Settings
from ragstore.errors import InvalidInput, PayloadTooLarge, RagstoreError

__all__ = ["BodyLimits", "RequestGuardMiddleware", "document_guard_responses", "json_depth", "send_error"]

# Multipart framing around an uploaded file; the file itself is limited by RAGSTORE_MAX_DOCUMENT_BYTES.
MULTIPART_OVERHEAD = 64 * 1024
_SEARCH = re.compile(r"/v1/collections/[^/]+/search")
_DOCUMENTS = re.compile(r"/v1/collections/[^/]+/documents")
# A JSON string, escapes included (the unrolled form: no per-character alternation).
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_SCAN_BLOCK = 1 << 20


@dataclass(frozen=True, slots=True)
class BodyLimits:
    """The most bytes a body may have on each kind of route, and how deep a JSON body may nest."""

    json: int
    search: int
    upload: int
    depth: int

    @classmethod
    def from_settings(cls, settings: Settings) -> BodyLimits:
        return cls(
            json=settings.max_json_body_bytes,
            search=settings.max_search_body_bytes,
            upload=settings.max_document_bytes + MULTIPART_OVERHEAD,
            depth=settings.max_json_depth,
        )

    def for_request(self, method: str, path: str) -> tuple[int, str]:
        """(limit, the setting that sets it), for the error message."""
        if method == "POST" and path.startswith("/v1/collections/"):  # the string tests spare most regexes
            if path.endswith("/search") and _SEARCH.fullmatch(path):
                return self.search, "RAGSTORE_MAX_SEARCH_BODY_BYTES"
            if path.endswith("/documents") and _DOCUMENTS.fullmatch(path):
                return self.upload, "RAGSTORE_MAX_DOCUMENT_BYTES"
        return self.json, "RAGSTORE_MAX_JSON_BODY_BYTES"


def json_depth(body: bytes, limit: int) -> int:
    """How deep `body` nests arrays and objects, exactly when that is more than `limit` (else at most it).

    Brackets inside strings do not nest, so strings are cut out first; what is left is counted in numpy.
    A body with fewer opening brackets than `limit` cannot be deeper, which settles almost every request
    with two `bytes.count` calls. An invalid body may be mis-scanned after its first error, but the parser
    stops there too, so the depth the parser would reach is always seen.
    """
    opens = body.count(b"[") + body.count(b"{")
    if opens <= limit:
        return opens
    brackets = _STRING.sub(b"", body).translate(None, _NOT_BRACKETS)
    deepest = level = 0
    for start in range(0, len(brackets), _SCAN_BLOCK):
        block = np.frombuffer(brackets, dtype=np.uint8, count=min(_SCAN_BLOCK, len(brackets) - start), offset=start)
        steps = np.where((block == ord("[")) | (block == ord("{")), 1, -1).astype(np.int32)
        levels = np.cumsum(steps, dtype=np.int32) + level
        deepest = max(deepest, int(levels.max()))
        level = int(levels[-1])
    return deepest


async def send_error(send: Send, error: RagstoreError) -> None:
    """The documented error body, `{"error": {"code", "message"}}`, with the error's status."""
    body = json.dumps({"error": error.to_dict()}, ensure_ascii=False).encode()
    await send(
        {
            "type": "http.response.start",
            "status": error.http_status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _too_deep(depth: int, limit: int) -> InvalidInput:
    return InvalidInput(
        f"the JSON body nests {depth:,} levels deep; at most {limit} are accepted (RAGSTORE_MAX_JSON_DEPTH)",
        details={"max_depth": limit},
    )


def _too_large(limit: int, setting: str) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"request body is over the limit of {limit:,} bytes ({setting})", details={"limit_bytes": limit}
    )


class RequestGuardMiddleware:
    """The Host and the form of a write (api/origin.py), then the body's size and depth: one pass over the
    headers for all of it, since every request, cached searches included, goes through here."""

    def __init__(
        self,
        app: ASGIApp,
        limits: BodyLimits,
        hosts: frozenset[str] | None,
        takes_post: Callable[[str], bool] = lambda path: True,
    ) -> None:
        self.app = app
        self.limits = limits
        self.hosts = hosts
        # Whether a route takes POST at this path: a POST to one that does not is routing's 405, not a
        # refused write (the write rule protects only what a write could change).
        self.takes_post = takes_post
        # Header values seen before and what they meant; a client sends the same few again and again.
        self._host_ok: dict[bytes, bool] = {}
        self._json_type: dict[bytes, bool] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        host = content_type = length = b""
        marked = False
        for name, value in scope["headers"]:
            if name == b"host":
                host = value
            elif name == b"content-type":
                content_type = value
            elif name == b"content-length":
                length = value
            elif name == WRITE_HEADER:
                marked = True
        if self.hosts is not None and not self._allowed(host):
            await send_error(send, host_refusal(host))
            return
        is_json = self._json_type.get(content_type)
        if is_json is None:
            is_json = is_json_type(content_type)
            if len(self._json_type) < 256:
                self._json_type[content_type] = is_json
        method = scope["method"]
        if method == "POST" and not marked and not is_json and self.takes_post(scope["path"]):
            await send_error(send, write_refusal(content_type))
            return
        limit, setting = self.limits.for_request(method, scope["path"])
        if length:
            if not length.isdigit():  # bytes: ASCII digits only
                await send_error(send, InvalidInput("Content-Length is not a number"))
                return
            if int(length) > limit:
                await send_error(send, _too_large(limit, setting))
                return
        if not is_json:
            await self._streamed(scope, receive, send, limit, setting)
            return
        # A JSON body: gathered (at most `limit` bytes), its depth checked, handed on in one message. Inline,
        # not a method: a cached search comes this way, and each coroutine layer costs it.
        message = await receive()
        if message["type"] != "http.request":
            return  # the client went away
        if message.get("more_body", False):
            gathered = await self._gather(message, receive, send, limit, setting)
            if gathered is None:
                return
            message = gathered
        body = message.get("body", b"")
        if len(body) > limit:
            await send_error(send, _too_large(limit, setting))
            return
        # Nesting needs an opening bracket a level: a body with no more of them than the limit (any search)
        # is spared the scan, two counts in C being cheaper than stripping its strings.
        if len(body) > self.limits.depth and body.count(b"[") + body.count(b"{") > self.limits.depth:
            depth = json_depth(body, self.limits.depth)
            if depth > self.limits.depth:
                await send_error(send, _too_deep(depth, self.limits.depth))
                return
        await self.app(scope, replaying(message, receive), send)

    def _allowed(self, host: bytes) -> bool:
        ok = self._host_ok.get(host)
        if ok is None:
            assert self.hosts is not None
            ok = host_name(host.decode("latin-1")) in self.hosts
            if len(self._host_ok) < 256:
                self._host_ok[host] = ok
        return ok

    @staticmethod
    async def _gather(first: Message, receive: Receive, send: Send, limit: int, setting: str) -> Message | None:
        """The body of several messages as one, or None once it passed `limit` (answered 413) or the client left."""
        parts = [first.get("body", b"")]
        size = len(parts[0])
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await send_error(send, _too_large(limit, setting))
                return None
            parts.append(chunk)
            if not message.get("more_body", False):
                return {"type": "http.request", "body": b"".join(parts), "more_body": False}

    async def _streamed(self, scope: Scope, receive: Receive, send: Send, limit: int, setting: str) -> None:
        """Pass the body through as it comes, counting; past the limit, the next read raises."""
        size = 0
        started = False

        async def counted() -> Message:
            nonlocal size
            message = await receive()
            if message["type"] == "http.request":
                size += len(message.get("body", b""))
                if size > limit:
                    raise _too_large(limit, setting)
            return message

        async def watched(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted, watched)
        except PayloadTooLarge as exc:
            if started:
                raise
            await send_error(send, exc)


GUARD_STATUSES: dict[str, tuple[tuple[int, str], ...]] = {
    "every": (
        (400, "The Host header names a host this server does not answer to (RAGSTORE_ALLOWED_HOSTS)."),
        (413, "The request body is over its route's limit (the message names the setting)."),
        (
            429,
            "Over the caller's rate limit or its cap on requests in flight (Retry-After and RateLimit-* headers "
            "say when to come back).",
        ),
    ),
    "post": (
        (415, "A POST must be JSON (Content-Type: application/json) or carry an X-Requested-With header."),
        (403, "A multipart upload without an X-Requested-With header (a form on another site could send it)."),
        (422, "The body is not valid, or its JSON nests deeper than RAGSTORE_MAX_JSON_DEPTH."),
    ),
}


def document_guard_responses(app: FastAPI) -> None:
    """Add the statuses the request guards and the rate limiter (api/metering.py) answer before any route runs
    to every operation in OpenAPI.

    They come from middleware, so no route declares them; a client (and a contract fuzzer) must still find
    them documented. FastAPI's documented way to extend the schema: wrap `app.openapi` once.
    """
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = generate()
        body = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}
        for operations in schema.get("paths", {}).values():
            for method, operation in operations.items():
                statuses = GUARD_STATUSES["every"] + (GUARD_STATUSES["post"] if method == "post" else ())
                for status, meaning in statuses:
                    operation.setdefault("responses", {}).setdefault(
                        str(status), {"description": meaning, "content": body}
                    )
        schema.setdefault("components", {}).setdefault("schemas", {}).setdefault(
            "ErrorResponse", ErrorResponse.model_json_schema(ref_template="#/components/schemas/{model}")
        )
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
