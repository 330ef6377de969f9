"""Sending calls: retries with backoff, timeouts, errors mapped, and plans driven (sync and async alike).

`SyncHttp` and `AsyncHttp` are the only code that does I/O; everything they do is the same, step for step,
so the two clients behave the same. The sleep and the clock are injected so a test of the retry rule runs
in microseconds (`ManualClock`, a sleep that records).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import httpx

from ragstore import __version__
from ragstore.client.calls import Call, Pause, Plan
from ragstore.client.errors import error_from_response, unreachable
from ragstore.client.retry import RETRIED_STATUSES, RetryPolicy, retry_after_s, sent_nothing
from ragstore.clock import SYSTEM_CLOCK, Clock

__all__ = ["AsyncHttp", "SyncHttp", "async_sleep", "base_headers"]

T = TypeVar("T")


def base_headers(api_key: str | None) -> dict[str, str]:
    """Every request's headers. `X-Requested-With` is how the server tells a program from a form another
    site could make a browser send (api/origin.py): it lets an upload and a POST without a body through."""
    headers = {
        "User-Agent": f"ragstore-client/{__version__}",
        "Accept": "application/json",
        "X-Requested-With": "ragstore-client",
    }
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    return headers


def _request_args(call: Call[Any], timeout: float | None) -> dict[str, Any]:
    args: dict[str, Any] = {"params": _query(call.params), "timeout": call.timeout or timeout}
    if call.json is not None:
        args["json"] = call.json
    if call.files is not None:
        args["files"] = call.files
    if call.data is not None:
        args["data"] = call.data
    return args


def _query(params: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Query parameters without the unset ones, booleans as the API spells them."""
    if not params:
        return None
    return {k: ("true" if v else "false") if isinstance(v, bool) else v for k, v in params.items() if v is not None}


class _Core:
    """What both drivers share: the URL, the retry policy and the decision to retry."""

    def __init__(self, url: str, timeout: float | None, policy: RetryPolicy, clock: Clock) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.policy = policy
        self.clock = clock

    def wait_after_answer(self, response: httpx.Response, attempt: int) -> float | None:
        """Seconds to wait before sending again, or None when this answer is final."""
        if response.status_code not in RETRIED_STATUSES or attempt >= self.policy.retries:
            return None
        return self.policy.wait_s(attempt, retry_after_s(response, self.clock.now()))

    def wait_after_failure(self, exc: httpx.TransportError, call: Call[Any], attempt: int) -> float | None:
        if attempt >= self.policy.retries or not (sent_nothing(exc) or call.idempotent):
            return None
        return self.policy.wait_s(attempt, None)

    def result(self, call: Call[T], response: httpx.Response) -> T:
        if response.is_error:
            raise error_from_response(response, self.clock)
        return call.parse(response)


class SyncHttp:
    def __init__(
        self,
        url: str,
        api_key: str | None,
        *,
        timeout: float | None,
        policy: RetryPolicy,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.core = _Core(url, timeout, policy, clock)
        self.sleep = sleep
        self.client = httpx.Client(
            base_url=self.core.url, headers=base_headers(api_key), timeout=timeout, transport=transport
        )

    def send(self, call: Call[T]) -> T:
        attempt = 0
        while True:
            try:
                response = self.client.request(call.method, call.path, **_request_args(call, self.core.timeout))
            except httpx.TransportError as exc:
                wait = self.core.wait_after_failure(exc, call, attempt)
                if wait is None:
                    raise unreachable(self.core.url, exc, call.timeout or self.core.timeout) from exc
            else:
                wait = self.core.wait_after_answer(response, attempt)
                if wait is None:
                    return self.core.result(call, response)
            self.sleep(wait)
            attempt += 1

    def run(self, plan: Call[T] | Plan[T]) -> T:
        """One call, or a plan driven to its result."""
        if isinstance(plan, Call):
            return self.send(plan)
        try:
            step = next(plan)
            while True:
                if isinstance(step, Pause):
                    self.sleep(step.seconds)
                    step = plan.send(None)
                else:
                    step = plan.send(self.send(step))
        except StopIteration as done:
            result: T = done.value
            return result

    def close(self) -> None:
        self.client.close()


async def async_sleep(seconds: float) -> None:
    await asyncio.sleep(seconds)


class AsyncHttp:
    def __init__(
        self,
        url: str,
        api_key: str | None,
        *,
        timeout: float | None,
        policy: RetryPolicy,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = async_sleep,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.core = _Core(url, timeout, policy, clock)
        self.sleep = sleep
        self.client = httpx.AsyncClient(
            base_url=self.core.url, headers=base_headers(api_key), timeout=timeout, transport=transport
        )

    async def send(self, call: Call[T]) -> T:
        attempt = 0
        while True:
            try:
                response = await self.client.request(call.method, call.path, **_request_args(call, self.core.timeout))
            except httpx.TransportError as exc:
                wait = self.core.wait_after_failure(exc, call, attempt)
                if wait is None:
                    raise unreachable(self.core.url, exc, call.timeout or self.core.timeout) from exc
            else:
                wait = self.core.wait_after_answer(response, attempt)
                if wait is None:
                    return self.core.result(call, response)
            await self.sleep(wait)
            attempt += 1

    async def run(self, plan: Call[T] | Plan[T]) -> T:
        if isinstance(plan, Call):
            return await self.send(plan)
        try:
            step = next(plan)
            while True:
                if isinstance(step, Pause):
                    await self.sleep(step.seconds)
                    step = plan.send(None)
                else:
                    step = plan.send(await self.send(step))
        except StopIteration as done:
            result: T = done.value
            return result

    async def close(self) -> None:
        await self.client.aclose()
