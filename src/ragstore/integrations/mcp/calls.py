"""One MCP call, run the way the HTTP API runs a request: as its principal, checked, metered and answered.

`CallRunner.run` is to a tool call or a resource read what api/auth.py and api/metering.py are to a request:
- the caller's principal is found again (a revoked key stops working mid-session) and the call runs as it
  (`security.context.begin_call`), so anything the core audits names the key, the request and the address;
- the embedding work it causes is tallied, and one usage row is queued for `api_usage_logs`, with method
  `MCP` and the route `mcp:<kind>/<name>` (never the arguments), so `ragstore usage` and `GET /v1/usage`
  show MCP traffic by key beside the API's;
- a ragstore error becomes a readable MCP error (a tool error, or a resource error) with the status it
  would have had over HTTP in the usage row; anything unexpected is logged here with its traceback and
  reaches the client as one line, so no call can take the server down or show it a stack.
"""

from __future__ import annotations

import itertools
import logging
import os
import time
from collections.abc import Callable
from typing import Any, TypeVar

import anyio.from_thread
from pydantic import BaseModel, ValidationError

from ragstore.embeddings.accounting import tallying
from ragstore.errors import InvalidInput, RagstoreError, TooManyRequests
from ragstore.integrations.mcp.access import Caller
from ragstore.security.context import begin_call, end_call
from ragstore.security.principal import Principal
from ragstore.security.ratelimit import Admission
from ragstore.service import RagStore

__all__ = ["CallRunner", "validated"]

log = logging.getLogger(__name__)
T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)
# Request ids, as the API makes them: unique, not secret.
_PREFIX = f"mcp-{os.urandom(4).hex()}"
_COUNTER = itertools.count(1)


def validated(model: type[M], fields: dict[str, Any]) -> M:
    """`fields` validated by one of the API's own request models (the same limits, the same messages), or
    InvalidInput naming each problem, as the API's 422 does."""
    try:
        return model.model_validate(fields)
    except ValidationError as exc:
        problems = [f"{'.'.join(str(p) for p in e['loc']) or 'value'}: {e['msg']}" for e in exc.errors()]
        raise InvalidInput("; ".join(problems), details={"problems": problems}) from None


class CallRunner:
    """Runs each tool call and resource read of one server (one store, one way of finding the caller)."""

    def __init__(self, store: RagStore, caller: Caller) -> None:
        self.store = store
        self.caller = caller

    def run(
        self,
        route: str,
        collection: str | None,
        work: Callable[[Principal], T],
        *,
        failed: Callable[[str, RagstoreError | None], Exception],
    ) -> T:
        """`work(principal)` as the caller; `failed(message, error)` makes the exception the SDK shows the
        client (a ToolError for a tool, a ResourceError for a resource)."""
        started = time.perf_counter()
        status = 200
        principal: Principal | None = None
        calls = tokens = 0
        try:
            principal = self.caller.principal()
            admission = self._admit(principal, route)
            token = begin_call(principal, f"{_PREFIX}-{next(_COUNTER):x}", self.caller.address())
            try:
                with tallying() as tally:
                    try:
                        return work(principal)
                    finally:
                        calls, tokens = tally.calls, tally.tokens
            finally:
                end_call(token)
                if admission is not None:
                    self.store.components.rate_limiter.release(admission)
        except RagstoreError as exc:
            status = exc.http_status
            raise failed(f"{exc.message} ({exc.code})", exc) from None
        except Exception as exc:
            status = 500
            log.exception("MCP %s failed unexpectedly", route)
            raise failed(f"unexpected {type(exc).__name__}; the server's log has the details", None) from None
        finally:
            self._record(route, collection, principal, status, started, calls, tokens)

    def _admit(self, principal: Principal, route: str) -> Admission | None:
        """The API's rate limit and cap on calls in flight, charged to the same bucket as the caller's HTTP
        requests (its key's, its user's or its role's limit): an MCP session is no way around them. The SDK
        runs a tool in a worker thread of its event loop, where the limiter's coroutines are run; a call made
        outside one (a test calling a tool directly) is not limited, as the CLI is not."""
        limiter = self.store.components.rate_limiter
        address = self.caller.address()

        async def admit() -> Admission | None:
            bucket = await limiter.bucket_for(principal, address, f"/mcp/{route}")
            return None if bucket is None else await limiter.admit(bucket, 1)

        try:
            admission = anyio.from_thread.run(admit)
        except RuntimeError:  # not in a worker thread of an event loop
            return None
        if admission is not None and not admission.allowed:
            raise TooManyRequests(
                f"{admission.reason}; retry in {admission.retry_after_s:.0f} s",
                retry_after_s=admission.retry_after_s,
                details={"retry_after_s": admission.retry_after_s},
            )
        return admission

    def _record(
        self,
        route: str,
        collection: str | None,
        principal: Principal | None,
        status: int,
        started: float,
        calls: int,
        tokens: int,
    ) -> None:
        """One usage row, as the metering middleware queues one per request (it never blocks or raises)."""
        self.store.usage.record(
            {
                "created_at": self.store.clock.now(),
                "api_key_id": principal.key_id if principal is not None else None,
                "user_id": principal.user_id if principal is not None else None,
                "method": "MCP",
                "route": f"mcp:{route}"[:200],
                "collection": collection[:128] if collection is not None else None,
                "status": status,
                "latency_ms": round((time.perf_counter() - started) * 1000, 3),
                "request_bytes": 0,
                "response_bytes": 0,
                "embedding_calls": calls,
                "embedding_tokens": tokens,
                "client_address": self.caller.address()[:64],
            }
        )
