"""The server's error answers as the domain errors the local facade raises (`ragstore.errors`).

A caller that handles `NotFound` or `Conflict` around `store.documents.get(...)` must handle the client's
answer with the same `except`, and the CLI must exit with the same code, whichever face did the work. The
status decides the category (it is what the server derived from the category in the first place); the body's
`code` refines it where it names a category with that status, and stays on the error as `code` (a backup's
`backup_damaged`, say). The server's message and details are kept as they were.
"""

from __future__ import annotations

from typing import Any

import httpx

from ragstore.clock import Clock
from ragstore.errors import (
    CATEGORIES,
    BadRequest,
    ConfigError,
    Conflict,
    Forbidden,
    InsufficientStorage,
    InvalidInput,
    NotFound,
    OperationFailed,
    PayloadTooLarge,
    RagstoreError,
    TooManyRequests,
    Unauthorized,
    Unavailable,
    UnsupportedMediaType,
)

__all__ = ["LocalOnly", "error_from_response", "unreachable"]

BY_STATUS: dict[int, type[RagstoreError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    415: UnsupportedMediaType,
    422: InvalidInput,
    429: TooManyRequests,
    500: OperationFailed,
    503: Unavailable,
    507: InsufficientStorage,
}
# ConfigError is left out on purpose: the server's configuration is not the client's to fix, so for a client
# it is the server failing (OperationFailed, exit 1), as ragstore.errors says.
BY_CODE: dict[str, type[RagstoreError]] = {c.code: c for c in CATEGORIES if c is not ConfigError}


class LocalOnly(InvalidInput):
    """An operation the HTTP API does not offer (it reads the server's files, or is an operator's task):
    it needs a local store. A caller's error (exit 2): run it where the store is."""

    code = "local_only"


def _category(status: int, code: str | None) -> type[RagstoreError]:
    named = BY_CODE.get(code or "")
    if named is not None and named.http_status == status:
        return named
    if status in BY_STATUS:
        return BY_STATUS[status]
    return InvalidInput if 400 <= status < 500 else OperationFailed


def error_from_response(response: httpx.Response, clock: Clock) -> RagstoreError:
    """The domain error for an error answer, with the server's message, details and code."""
    from ragstore.client.retry import retry_after_s

    status = response.status_code
    code, message, details = None, "", None
    try:
        body: Any = response.json()
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        code = error.get("code") if isinstance(error.get("code"), str) else None
        message = str(error.get("message") or "")
        details = error.get("details") if isinstance(error.get("details"), dict) else None
    if not message:  # not ragstore's answer (a proxy's page, say): its status and the start of its text
        text = " ".join(response.text.split())[:200]
        message = f"HTTP {status} from {response.request.url}" + (f": {text}" if text else "")
    kind = _category(status, code)
    made: RagstoreError
    if kind is TooManyRequests:
        made = TooManyRequests(message, retry_after_s=retry_after_s(response, clock.now()) or 1.0, details=details)
    else:
        made = kind(message, details=details)
    if code:
        made.code = code  # the server's own, more specific code (an instance attribute over the class's)
    return made


def unreachable(url: str, exc: httpx.TransportError, timeout: float | None) -> Unavailable:
    """A request that got no answer: the server is down, unreachable or too slow; the message names the URL."""
    if isinstance(exc, httpx.TimeoutException):
        within = f" within {timeout:g} s" if timeout else ""
        return Unavailable(f"the ragstore server at {url} did not answer{within} ({type(exc).__name__})")
    reason = str(exc).strip() or type(exc).__name__
    return Unavailable(f"the ragstore server at {url} cannot be reached: {reason}")
