"""`RagStoreClient` and `AsyncRagStoreClient`: the facade's sub-facades over the HTTP API.

Code written against `RagStore` (the CLI, an adapter, a script) can take a client instead: the same
attribute names (`collections`, `documents`, `search`, `chat`, `backups`, `consistency`), the same method
names and signatures, the same typed results (`ragstore.schemas`) and the same domain errors
(`ragstore.errors`). What differs is said in each sub-facade's docstring; operations the API does not offer
raise `LocalOnly` (an InvalidInput, exit 2), never a silent no-op.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from types import TracebackType

import httpx

from ragstore.client.backups import AsyncBackups, Backups
from ragstore.client.chat import AsyncChat, Chat
from ragstore.client.collections import AsyncCollections, Collections
from ragstore.client.consistency import AsyncConsistency, Consistency
from ragstore.client.documents import AsyncDocuments, Documents
from ragstore.client.http import AsyncHttp, SyncHttp, async_sleep
from ragstore.client.retry import RetryPolicy
from ragstore.client.search import AsyncSearch, Search
from ragstore.clock import SYSTEM_CLOCK, Clock

__all__ = ["AsyncRagStoreClient", "RagStoreClient"]


def _policy(retries: int, backoff: float, max_wait: float) -> RetryPolicy:
    return RetryPolicy(retries=retries, backoff=backoff, max_wait=max_wait)


class RagStoreClient:
    """A ragstore server at `url`, called with `api_key` (sent as `Authorization: Bearer`).

    `timeout`: seconds for one request (connect and each read; long operations such as a backup verify or
    a consistency check allow an hour). `retries`, `backoff`, `max_wait`: the retry rule of
    `ragstore.client.retry`. `transport`, `sleep` and `clock` are for tests (an `httpx.MockTransport`, a
    sleep that records, a `ManualClock` for Retry-After dates).
    """

    def __init__(
        self,
        url: str,
        api_key: str | None = None,
        *,
        timeout: float | None = 30.0,
        retries: int = 3,
        backoff: float = 0.5,
        max_wait: float = 30.0,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.url = url.rstrip("/")
        self._http = SyncHttp(
            self.url,
            api_key,
            timeout=timeout,
            policy=_policy(retries, backoff, max_wait),
            transport=transport,
            sleep=sleep,
            clock=clock,
        )
        self.collections = Collections(self._http)
        self.documents = Documents(self._http)
        self.search = Search(self._http)
        self.chat = Chat(self._http)
        self.backups = Backups(self._http)
        self.consistency = Consistency(self._http)

    def __repr__(self) -> str:  # never the key
        return f"RagStoreClient({self.url!r})"

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> RagStoreClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class AsyncRagStoreClient:
    """`RagStoreClient` with `async` methods (and async iterators), for an event loop."""

    def __init__(
        self,
        url: str,
        api_key: str | None = None,
        *,
        timeout: float | None = 30.0,
        retries: int = 3,
        backoff: float = 0.5,
        max_wait: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = async_sleep,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.url = url.rstrip("/")
        self._http = AsyncHttp(
            self.url,
            api_key,
            timeout=timeout,
            policy=_policy(retries, backoff, max_wait),
            transport=transport,
            sleep=sleep,
            clock=clock,
        )
        self.collections = AsyncCollections(self._http)
        self.documents = AsyncDocuments(self._http)
        self.search = AsyncSearch(self._http)
        self.chat = AsyncChat(self._http)
        self.backups = AsyncBackups(self._http)
        self.consistency = AsyncConsistency(self._http)

    def __repr__(self) -> str:
        return f"AsyncRagStoreClient({self.url!r})"

    async def close(self) -> None:
        await self._http.close()

    async def __aenter__(self) -> AsyncRagStoreClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
