"""A batch of searches of one collection (`store.search.batch`, `POST .../search/batch`): the same answers as
the searches one by one, for a fraction of their cost.

What a search costs besides its own ranking is mostly shared work, which a batch does once: the collection is
resolved and this process's replica levelled once; every query text that needs an embedding (a miss of the
result cache and of the query-embedding cache) is embedded in ONE model call, as is every text the bridge
fusion gives the companion model; the dense sides of the searches without a filter are found in one
vector-index call and one SQL read; over HTTP the request is authenticated, authorised, rate-limited and
parsed once.

Every search is checked before any runs: one that is not valid refuses the whole batch with an InvalidInput
naming its index (`searches.3: query is empty`, `details.index`), and nothing runs, so a caller never gets a
partial answer to sort out. A failure while running (the vector index down: 503) fails the batch as it would
fail the search. Each search keeps what it has alone: its result-cache entry (a batch and single searches
share the cache), its cursor, its query-log row and its metrics; its `took_ms` is its own time plus an equal
share of the batch's embedding calls.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, TypeVar

import numpy as np

from ragstore.cache.layers import request_digest
from ragstore.errors import InvalidInput, Unavailable
from ragstore.schemas import MAX_SEARCH_BATCH, SearchRequest, SearchResponse
from ragstore.search.prepared import PreparedSearch

if TYPE_CHECKING:
    from ragstore.search.service import SearchService

__all__ = ["run_batch"]

T = TypeVar("T")


def run_batch(service: SearchService, collection: str, requests: Sequence[SearchRequest]) -> list[SearchResponse]:
    """The searches' responses in their order (see the module's docstring)."""
    started = time.perf_counter()
    if isinstance(requests, (str, bytes)) or not isinstance(requests, Sequence):
        raise InvalidInput("searches must be a list of search requests")
    if not 1 <= len(requests) <= MAX_SEARCH_BATCH:
        raise InvalidInput(f"a batch holds 1 to {MAX_SEARCH_BATCH} searches, got {len(requests)}")
    # Every check first, the ones that need no collection before its name is looked up (as a single search).
    options = [_at(i, service._checked, _request(i, r)) for i, r in enumerate(requests)]
    ref = service.catalog.resolve(collection)
    prepared = [
        _at(i, service._prepare, ref, collection, r, o) for i, (r, o) in enumerate(zip(requests, options, strict=True))
    ]
    version = service._level(ref.id)
    looked_up = [service._lookup(ref.id, version, p) for p in prepared]
    misses = [p for p, (_, cached) in zip(prepared, looked_up, strict=True) if cached is None]
    checked_ms = (time.perf_counter() - started) * 1000 / len(prepared)
    shared = (
        _embed_queries(service, misses)
        + _analyse(service, ref.id, misses)
        + _dense(service, ref.id, ref.embedding_model, misses)
    )
    share = shared / len(prepared)
    responses = []
    finished: set[str] = set()
    for p, (key, cached) in zip(prepared, looked_up, strict=True):
        if cached is None and key in finished:  # the same search twice: the second is answered from the cache
            cached = service.cache.search.get(key)
        responses.append(
            service._finish(ref, p, key, cached, time.perf_counter(), shared_ms=share + checked_ms, version=version)
        )
        finished.add(key)
    return responses


def _request(index: int, request: object) -> SearchRequest:
    if not isinstance(request, SearchRequest):
        raise InvalidInput(f"searches.{index}: not a SearchRequest", details={"index": index})
    return request


def _at(index: int, step: Callable[..., T], *args: object) -> T:
    """`step(*args)`, an InvalidInput it raises naming the search it is about."""
    try:
        return step(*args)
    except InvalidInput as exc:
        raise InvalidInput(f"searches.{index}: {exc.message}", details={**exc.details, "index": index}) from exc


def _embed_queries(service: SearchService, misses: list[PreparedSearch]) -> float:
    """Put each miss's query embedding in its `vector`: from the query-embedding cache, the rest in one model
    call. Returns the milliseconds it took."""
    started = time.perf_counter()
    wanted = [p for p in misses if p.mode != "lexical" and p.vector is None and p.cut is not None]
    if not wanted:
        return 0.0
    layer, model = service.cache.embeddings, service.embedder.model
    size = 4 * service.embedder.dimension
    found: dict[str, np.ndarray] = {}
    keys = {text: layer.key(model, request_digest(["query", text])) for text in {p.cut.text for p in wanted if p.cut}}
    for text, key in keys.items():
        blob = layer.get(key)
        if blob is not None and len(blob) == size:
            found[text] = np.frombuffer(blob, dtype="<f4")
    missing = [text for text in keys if text not in found]
    if missing:
        vectors = service.query_batcher.embed_many(missing)
        for text, vector in zip(missing, vectors, strict=True):
            found[text] = np.asarray(vector, dtype="<f4")
            layer.set(keys[text], found[text].tobytes())
    for p in wanted:
        assert p.cut is not None
        p.vector = found[p.cut.text]
    return (time.perf_counter() - started) * 1000


def _analyse(service: SearchService, collection_id: int, misses: list[PreparedSearch]) -> float:
    """The misses' lexical terms, and for the bridge fusion their expansions and companion vectors in one
    encoder call. Returns the milliseconds it took."""
    started = time.perf_counter()
    texts = [p for p in misses if p.cut is not None and p.mode != "dense"]
    for p in texts:
        assert p.cut is not None
        try:
            p.terms = service.lexical_indexer.query(collection_id, p.cut.text)
        except Unavailable:
            if p.mode == "lexical":
                raise
            p.terms = None  # the search itself finds the lexical side down and runs dense
    bridge = service.term_bridge
    bridged = [p for p in texts if p.mode == "hybrid" and p.options.fusion == "bridge" and p.terms is not None]
    if bridge is not None and bridged:
        state = service.lexical_indexer.state(collection_id)
        answers = bridge.bridged_many(
            collection_id, state, [(p.cut.text if p.cut else None, p.terms or []) for p in bridged]
        )
        for p, answer in zip(bridged, answers, strict=True):
            p.bridged = answer
    return (time.perf_counter() - started) * 1000


def _dense(service: SearchService, collection_id: int, model: str, misses: list[PreparedSearch]) -> float:
    """The dense side of every unfiltered miss, with the others asking for as many chunks: one vector-index call
    and one SQL read for them all (a filter selects its own allowed chunks: such a search finds its own). Returns
    the milliseconds it took."""
    started = time.perf_counter()
    engine = service.engine
    groups: dict[int, list[PreparedSearch]] = {}
    for p in misses:
        dense_side = p.mode == "dense" or (p.mode == "hybrid" and p.options.dense_weight > 0)
        if dense_side and p.vector is not None and not p.filter_spec:
            groups.setdefault(engine.proposals(p.mode, p.options), []).append(p)
    for n, group in groups.items():
        vectors = [p.vector for p in group if p.vector is not None]
        found = engine.dense.search_many(collection_id, vectors, n, model=model)
        for p, answer in zip(group, found, strict=True):
            p.dense = answer
    return (time.perf_counter() - started) * 1000
