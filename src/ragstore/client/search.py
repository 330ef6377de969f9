"""`client.search`: callable like `store.search`, `run` for a `SearchRequest`, `batch` for several in one
request, and `pages` that follows `next_cursor`.

The arguments are sent as they are given and checked by the server, whose 422 becomes the same
InvalidInput the facade raises; the client does not validate them a second time with other words.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

import httpx
import numpy as np

from ragstore.client.calls import Call, parsed, segment
from ragstore.client.http import AsyncHttp, SyncHttp
from ragstore.schemas import SearchBatchResponse, SearchRequest, SearchResponse

__all__ = ["AsyncSearch", "Search"]

FIELDS = tuple(SearchRequest.model_fields)


def _body(fields: dict[str, Any]) -> dict[str, Any]:
    """The request body: the fields given (None left out: the server's default), a vector as a list."""
    body = {k: v for k, v in fields.items() if v is not None}
    vector = body.get("vector")
    # Any sequence of numbers, numpy's included (an array, or a list of numpy floats as some embeddings
    # return), is sent as a list of JSON numbers.
    if vector is not None and not (isinstance(vector, list) and all(type(x) is float for x in vector)):
        try:
            body["vector"] = np.asarray(vector, dtype=float).reshape(-1).tolist()
        except (TypeError, ValueError):
            body["vector"] = list(vector)  # the server says what is wrong with it
    return body


def _fields(request: SearchRequest) -> dict[str, Any]:
    # Read attribute by attribute: a request made with model_construct (as the facade makes one) may hold a
    # numpy vector, which model_dump would not turn into JSON.
    return {name: getattr(request, name, None) for name in FIELDS}


def _call(collection: str, body: dict[str, Any]) -> Call[SearchResponse]:
    path = f"/v1/collections/{segment(collection)}/search"
    return Call("POST", path, parsed(SearchResponse), json=body, idempotent=True)


def _batch_call(collection: str, requests: Sequence[SearchRequest]) -> Call[list[SearchResponse]]:
    """`POST .../search/batch`: the server checks every search first and answers 422 naming the index of one
    it refuses (nothing runs), which the client raises as the facade's InvalidInput."""
    path = f"/v1/collections/{segment(collection)}/search/batch"
    body = {"searches": [_body(_fields(request)) for request in requests]}

    def parse(response: httpx.Response) -> list[SearchResponse]:
        return parsed(SearchBatchResponse)(response).results

    return Call("POST", path, parse, json=body, idempotent=True)


def _arguments(query: str | None, vector: Sequence[float] | None, options: dict[str, Any]) -> dict[str, Any]:
    unknown = set(options) - set(FIELDS)
    if unknown:
        raise TypeError(f"search() got unexpected keyword arguments: {', '.join(sorted(unknown))}")
    return {"query": query, "vector": vector, **options}


class Search:
    def __init__(self, http: SyncHttp) -> None:
        self._http = http

    def __call__(
        self,
        collection: str,
        query: str | None = None,
        *,
        vector: Sequence[float] | None = None,
        k: int = 10,
        filter: dict[str, Any] | None = None,
        mode: str | None = None,
        offset: int = 0,
        cursor: str | None = None,
        min_score: float | None = None,
        explain: bool = False,
        rrf_k: int | None = None,
        dense_weight: float | None = None,
        lexical_weight: float | None = None,
        min_coverage: float | None = None,
        fusion: str | None = None,
    ) -> SearchResponse:
        """The best k chunks for `query` and/or `vector` (as `store.search`)."""
        fields = {k: v for k, v in locals().items() if k in FIELDS}
        return self._http.run(_call(collection, _body(fields)))

    def run(self, collection: str, request: SearchRequest) -> SearchResponse:
        return self._http.run(_call(collection, _body(_fields(request))))

    def batch(self, collection: str, requests: Sequence[SearchRequest]) -> list[SearchResponse]:
        """Up to 100 searches in one request, their responses in order (as `store.search.batch`)."""
        return self._http.run(_batch_call(collection, requests))

    def pages(
        self, collection: str, query: str | None = None, *, vector: Sequence[float] | None = None, **options: Any
    ) -> Iterator[SearchResponse]:
        """Each page of a search, following `next_cursor` until the last (at most offset + k = 1,000 deep)."""
        body = _body(_arguments(query, vector, options))
        while True:
            page = self._http.run(_call(collection, body))
            yield page
            if page.next_cursor is None:
                return
            body = _body({**body, "cursor": page.next_cursor, "offset": None})


class AsyncSearch:
    def __init__(self, http: AsyncHttp) -> None:
        self._http = http

    async def __call__(
        self,
        collection: str,
        query: str | None = None,
        *,
        vector: Sequence[float] | None = None,
        k: int = 10,
        filter: dict[str, Any] | None = None,
        mode: str | None = None,
        offset: int = 0,
        cursor: str | None = None,
        min_score: float | None = None,
        explain: bool = False,
        rrf_k: int | None = None,
        dense_weight: float | None = None,
        lexical_weight: float | None = None,
        min_coverage: float | None = None,
        fusion: str | None = None,
    ) -> SearchResponse:
        fields = {k: v for k, v in locals().items() if k in FIELDS}
        return await self._http.run(_call(collection, _body(fields)))

    async def run(self, collection: str, request: SearchRequest) -> SearchResponse:
        return await self._http.run(_call(collection, _body(_fields(request))))

    async def batch(self, collection: str, requests: Sequence[SearchRequest]) -> list[SearchResponse]:
        return await self._http.run(_batch_call(collection, requests))

    async def pages(
        self, collection: str, query: str | None = None, *, vector: Sequence[float] | None = None, **options: Any
    ) -> AsyncIterator[SearchResponse]:
        body = _body(_arguments(query, vector, options))
        while True:
            page = await self._http.run(_call(collection, body))
            yield page
            if page.next_cursor is None:
                return
            body = _body({**body, "cursor": page.next_cursor, "offset": None})
