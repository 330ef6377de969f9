"""The search sub-facade, `store.search`: one request in, ranked hits of visible chunks out, through the caches.

Calling it (`store.search(collection, query, k=5)`) is the common case, so the object is callable; a
`SearchRequest` (the HTTP body) goes through `run`. The cached fast path for the server's event loop lives
here too, because it must key the result cache exactly as the full path does or neither would hit.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np

from ragstore.analytics.recorder import QueryRecorder
from ragstore.cache.layers import CacheLayers, request_digest, vector_digest
from ragstore.cache.versions import CollectionVersions
from ragstore.config import Settings
from ragstore.db.filter_spec import parse_filter
from ragstore.documents.catalog import Catalog, CollectionRef
from ragstore.embeddings.base import Embedder
from ragstore.embeddings.batching import QueryBatcher
from ragstore.errors import InvalidInput, RagstoreError, Unavailable
from ragstore.lexical.indexer import LexicalIndexer
from ragstore.schemas import SearchRequest, SearchResponse
from ragstore.search.batch import run_batch
from ragstore.search.bridge_fusion import KnownVectors
from ragstore.search.candidate_rows import CandidateRows
from ragstore.search.hybrid import SearchEngine
from ragstore.search.options import (
    MAX_DEPTH,
    Mode,
    SearchOptions,
    decode_cursor,
    encode_cursor,
    make_options,
    request_fingerprint,
)
from ragstore.search.prepared import PreparedSearch
from ragstore.search.query_cut import QueryCut, cut_query
from ragstore.search.result_cache import decode_result, encode_result, splice_response
from ragstore.search.rows import ChunkRow
from ragstore.search.sides import run_aside, searching
from ragstore.search.term_bridge import TermBridge
from ragstore.sync.applier import OutboxApplier
from ragstore.telemetry import SEARCH_DURATION, SEARCH_EMPTY, SEARCH_RESULTS
from ragstore.valid_text import checked_json, checked_text

__all__ = ["SearchService"]

log = logging.getLogger(__name__)


@dataclass(kw_only=True, slots=True)
class SearchService:
    """Each field is the store's component of that name, handed in by `wiring.build`."""

    settings: Settings
    catalog: Catalog
    embedder: Embedder
    engine: SearchEngine
    lexical_indexer: LexicalIndexer
    cache: CacheLayers
    versions: CollectionVersions
    recorder: QueryRecorder
    query_batcher: QueryBatcher
    applier: OutboxApplier
    term_bridge: TermBridge | None = None  # the bridge fusion's query expansion (None: no companion model)
    # The collection version this process's index replica was last levelled at, per collection.
    replica_versions: dict[int, int] = field(default_factory=dict, init=False)

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
        """The best k chunks for `query` (text) and/or `vector`: dense, lexical, or hybrid (the default).

        Hybrid fuses the dense and lexical rankings (search/hybrid.py); with only a vector it runs dense, and
        with only a text on a collection whose model this server cannot embed, lexical: the response's `mode`
        says which ran. Only chunks SQL holds as indexed, of active documents, are returned. `cursor` (from a
        previous response's `next_cursor`) continues a search; `offset` skips results directly.
        """
        # Unvalidated on purpose: Python callers get the facade's own InvalidInput messages (make_options).
        request = SearchRequest.model_construct(
            query=query,
            vector=vector,  # type: ignore[arg-type]  # any sequence of numbers; checked below
            k=k,
            filter=filter,
            mode=mode,  # type: ignore[arg-type]  # checked by make_options
            offset=offset,
            cursor=cursor,
            min_score=min_score,
            explain=explain,
            rrf_k=rrf_k,
            dense_weight=dense_weight,
            lexical_weight=lexical_weight,
            min_coverage=min_coverage,
            fusion=fusion,  # type: ignore[arg-type]  # checked by make_options
        )
        return self.run(collection, request)

    def run(self, collection: str, request: SearchRequest) -> SearchResponse:
        started = time.perf_counter()
        options = self._checked(request)
        ref = self.catalog.resolve(collection)
        prepared = self._prepare(ref, collection, request, options)
        version = self._level(ref.id)
        key, cached = self._lookup(ref.id, version, prepared)
        with searching():
            return self._finish(ref, prepared, key, cached, started, version=version)

    def batch(self, collection: str, requests: Sequence[SearchRequest]) -> list[SearchResponse]:
        """Several searches of one collection, answered in order, at a fraction of their cost one by one.

        Every search is checked before any runs: one that is not valid refuses the whole batch with an
        InvalidInput naming its index (`searches.3: ...`), and nothing runs. The collection is resolved and
        this process's replica levelled once, every query text that needs an embedding is embedded in one
        model call, and each search keeps its own result-cache entry, cursor and query-log row
        (search/batch.py).
        """
        return run_batch(self, collection, requests)

    def _checked(self, request: SearchRequest) -> SearchOptions:
        """The checks that need no collection (a bad query or filter is refused before the name is looked up)."""
        query, vector, filter_spec = request.query, request.vector, request.filter
        options = make_options(self.settings, request)
        if query is None and vector is None:
            raise InvalidInput("give a query (text), a vector, or both")
        if query is not None:
            checked_text(query, "query")
        if filter_spec is not None:
            checked_json(filter_spec, "filter")
            parse_filter(filter_spec)  # a bad filter is refused before the query is embedded
        if query is not None and (not isinstance(query, str) or not query.strip()):
            raise InvalidInput("query is empty")
        return options

    def _prepare(
        self, ref: CollectionRef, collection: str, request: SearchRequest, options: SearchOptions
    ) -> PreparedSearch:
        """The rest of the checks, against the collection, and what keys the search: nothing runs yet."""
        query, vector, filter_spec = request.query, request.vector, request.filter
        qvec: np.ndarray | None = None
        if vector is not None:
            qvec = _checked_vector(vector, ref.dimension, collection)
        can_embed = query is not None and ref.embedding_model == self.embedder.model
        run_mode = _run_mode(options.mode, has_vector=qvec is not None or can_embed, has_text=query is not None)
        if run_mode == "dense" and qvec is None and query is not None and not can_embed:
            raise InvalidInput(
                f"collection {collection!r} holds vectors of model {ref.embedding_model!r}, which this server "
                f"cannot embed (it embeds with {self.embedder.model!r}): search it by vector, or with mode lexical"
            )
        asked = [query, vector_digest(qvec) if qvec is not None else None]
        fingerprint = request_fingerprint(
            [ref.id, asked, filter_spec, options.key_parts()[:2], options.key_parts()[3:]]
        )
        if request.cursor is not None:
            if options.offset:
                raise InvalidInput("give offset or cursor, not both")
            options = dataclasses.replace(options, offset=decode_cursor(request.cursor, fingerprint))
            if options.offset + options.k > MAX_DEPTH:
                raise InvalidInput(f"the cursor is past the deepest page (offset + k at most {MAX_DEPTH})")
        return PreparedSearch(
            collection=collection,
            query=query,
            filter_spec=filter_spec,
            options=options,
            vector=qvec,
            mode=run_mode,
            asked=asked,
            fingerprint=fingerprint,
            cut=self._cut(query),
        )

    def _level(self, collection_id: int) -> int:
        """The collection's write version, with this process's index replica brought level with it first."""
        version = self.versions.current(collection_id)
        if self.replica_versions.get(collection_id) != version:
            # Another process changed the collection: bring this process's index replica level first.
            self.applier.advance()
            self.lexical_indexer.forget(collection_id)
            if self.term_bridge is not None:
                self.term_bridge.forget(collection_id)
            self.replica_versions[collection_id] = version
        return version

    def _lookup(self, collection_id: int, version: int, prepared: PreparedSearch) -> tuple[str, bytes | None]:
        """The search's result-cache key and what the cache holds under it (None: a miss)."""
        key = self._result_key(collection_id, version, prepared.asked, prepared.options, prepared.filter_spec)
        return key, self.cache.search.get(key)

    def _finish(
        self,
        ref: CollectionRef,
        prepared: PreparedSearch,
        key: str,
        cached: bytes | None,
        started: float,
        *,
        shared_ms: float = 0.0,
        version: int | None = None,
    ) -> SearchResponse:
        """Run a prepared search (unless the cache held it), count it, log it and answer it.

        `shared_ms`: this search's share of work done for several at once (a batch's embedding call), added
        to its `took_ms`. A batch fills `prepared.vector` (and `prepared.companion`) beforehand; a single
        search embeds its query here.
        """
        coll_id, collection, options = ref.id, prepared.collection, prepared.options
        query, filter_spec, cut, run_mode = prepared.query, prepared.filter_spec, prepared.cut, prepared.mode
        if cached is not None:
            found = decode_result(cached)
            hits, dropped, run_mode, next_cursor = found.hits, found.dropped, found.mode, found.next_cursor  # type: ignore[assignment]
        else:
            qvec = prepared.vector
            if run_mode != "lexical" and qvec is None:
                assert cut is not None
                qvec = self._query_vector(cut.text)
            terms = prepared.terms
            if cut is not None and run_mode != "dense" and terms is None:
                try:
                    terms = self.lexical_indexer.query(coll_id, cut.text)
                except Unavailable:
                    if run_mode == "lexical":
                        raise
                    log.warning("collection %r: lexical side unavailable, searching dense only", collection)
                    run_mode = "dense"
            companion_vector = None
            known = None
            # A batch's dense side, found for the mode it prepared (a lexical side down changes the mode).
            dense_found = prepared.dense if run_mode == prepared.mode else None
            if run_mode == "hybrid" and options.fusion == "bridge" and self.term_bridge is not None and cut:
                bridged = prepared.bridged
                if bridged is None:
                    aside = None
                    if dense_found is None and qvec is not None and options.dense_weight > 0:
                        side = partial(self._dense_side, coll_id, qvec, options, ref.embedding_model, filter_spec)
                        aside = run_aside(partial(side, version))
                    state = self.lexical_indexer.state(coll_id)
                    bridged = self.term_bridge.bridged(coll_id, state, cut.text, terms or [])
                    if aside is not None:
                        dense_found, known = aside.result()
                companion_vector, terms = bridged.vector, bridged.terms or terms
            ranked = self.engine.run(
                coll_id,
                run_mode,
                options,
                vector=qvec,
                terms=terms,
                filter_spec=filter_spec,
                model=ref.embedding_model,
                companion_vector=companion_vector,
                version=version,
                dense_found=dense_found,
                known=known,
            )
            hits, dropped = ranked.hits, ranked.dropped
            next_cursor = (
                encode_cursor(options.offset + options.k, prepared.fingerprint)
                if ranked.has_more and options.offset + 2 * options.k <= MAX_DEPTH
                else None
            )
            self.cache.search.set(key, encode_result(hits, dropped, run_mode, next_cursor))
        took = round((time.perf_counter() - started) * 1000 + shared_ms, 3)
        self._count(run_mode, took, len(hits))
        self.recorder.record(
            coll_id,
            query,
            mode=run_mode,
            k=options.k,
            chunk_ids=tuple(h.chunk_id for h in hits),
            latency_ms=took,
            cache_hit=cached is not None,
            filtered=bool(filter_spec),
        )
        return SearchResponse.model_construct(
            collection=collection,
            query=query,
            k=options.k,
            mode=run_mode,
            offset=options.offset,
            hits=hits,
            next_cursor=next_cursor,
            took_ms=took,
            dropped=dropped,
            cached=cached is not None,
            query_truncated=cut is not None and cut.truncated,
            query_chars_used=len(cut.text) if cut is not None else None,
        )

    def _dense_side(
        self,
        collection_id: int,
        vector: np.ndarray,
        options: SearchOptions,
        model: str,
        filter_spec: dict[str, Any] | None,
        version: int | None,
    ) -> tuple[tuple[list[tuple[ChunkRow, float]], int], KnownVectors]:
        """The dense half of a bridged hybrid search (filtered or not), as `SearchEngine.run` would find it,
        and its candidates' vectors, which the bridge fusion reads anyway: read with the hits' rows, in the
        same statement (search/candidate_rows.py)."""
        bridge, with_companion = self.engine.bridge, self.term_bridge is not None
        read = CandidateRows()

        def rows_and_vectors(ids: list[int]) -> dict[int, ChunkRow]:
            found = bridge.read(ids, model, with_companion)
            read.update(found)
            return found.rows

        found = self.engine.dense_side(
            collection_id, "hybrid", options, vector, filter_spec, model=model, version=version, read=rows_and_vectors
        )
        return found, KnownVectors(model, with_companion, read)

    def cached_json(self, collection: str, request: SearchRequest) -> bytes | None:
        """The whole response body of `run`, if this process holds it in its result cache; else None.

        For the HTTP server's event loop: it never waits on the network (the version comes from the event
        bus's knowledge or a local SQLite read) and never raises for bad input (None sends the request down
        the full path, which reports the problem).
        """
        started = time.perf_counter()
        ref = self.catalog.cached_ref(collection)
        if ref is None:
            return None
        version = self.versions.known_without_waiting(ref.id)
        if version is None or self.replica_versions.get(ref.id) != version:
            return None
        query, vector, filter_spec = request.query, request.vector, request.filter
        try:
            normal = make_options(self.settings, request)
            qvec = np.asarray(vector, dtype=np.float32).reshape(-1) if vector is not None else None
        except (RagstoreError, TypeError, ValueError):
            return None
        if query is None and qvec is None:
            return None
        asked = [query, vector_digest(qvec) if qvec is not None else None]
        if request.cursor is not None:
            if normal.offset:
                return None
            fingerprint = request_fingerprint(
                [ref.id, asked, filter_spec, normal.key_parts()[:2], normal.key_parts()[3:]]
            )
            try:
                normal = dataclasses.replace(normal, offset=decode_cursor(request.cursor, fingerprint))
            except RagstoreError:
                return None
        results = self.cache.search
        key = self._result_key(ref.id, version, asked, normal, filter_spec)
        stored = results.local.get(key) if results.enabled else None
        if stored is None:
            return None  # the full path counts the miss (and asks Redis)
        results.stats.count("hits_local")
        took = round((time.perf_counter() - started) * 1000, 3)
        body, mode, chunk_ids = splice_response(
            stored,
            collection=collection,
            query=query,
            k=request.k,
            offset=normal.offset,
            took_ms=took,
            cut=self._cut(query),
        )
        self._count(mode, took, len(chunk_ids))
        self.recorder.record(
            ref.id,
            query,
            mode=mode,
            k=request.k,
            chunk_ids=chunk_ids,
            latency_ms=took,
            cache_hit=True,
            filtered=bool(filter_spec),
        )
        return body

    def _count(self, mode: str, took_ms: float, hits: int) -> None:
        """The search's duration, hits and emptiness for GET /metrics (telemetry.py)."""
        SEARCH_DURATION.labels(mode, self.engine.dense.index.name).observe(took_ms / 1000)
        SEARCH_RESULTS.labels(mode).inc(hits)
        if not hits:
            SEARCH_EMPTY.labels(mode).inc()

    def _cut(self, query: str | None) -> QueryCut | None:
        """What of the query a search reads (RAGSTORE_QUERY_MAX_TOKENS, and never past the model's limit)."""
        if query is None:
            return None
        model_limit = getattr(self.embedder, "max_input_tokens", None)
        limit = self.settings.query_max_tokens
        return cut_query(query, min(limit, model_limit) if isinstance(model_limit, int) else limit)

    def _result_key(
        self, collection_id: int, version: int, asked: list[Any], options: SearchOptions, filter_spec: Any
    ) -> str:
        """The L2 key: the same for the full path and the event loop's fast path, or neither would hit."""
        return self.cache.search.key(collection_id, version, request_digest([asked, filter_spec, options.key_parts()]))

    def _query_vector(self, query: str) -> np.ndarray:
        """The query's embedding, from the L1 cache when this query was embedded before."""
        layer = self.cache.embeddings
        key = layer.key(self.embedder.model, request_digest(["query", query]))
        found = layer.get(key)
        if found is not None and len(found) == 4 * self.embedder.dimension:
            return np.frombuffer(found, dtype="<f4")
        qvec = np.asarray(self.query_batcher.embed(query), dtype="<f4")
        layer.set(key, qvec.tobytes())
        return qvec


def _run_mode(requested: Mode, *, has_vector: bool, has_text: bool) -> Mode:
    if requested == "lexical" and not has_text:
        raise InvalidInput("a lexical search needs a query text")
    if requested == "hybrid":
        if has_vector and has_text:
            return "hybrid"
        return "dense" if has_vector else "lexical"
    return requested


def _checked_vector(vector: Sequence[float], dimension: int, collection: str) -> np.ndarray:
    try:
        qvec = np.asarray(vector, dtype=np.float32).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise InvalidInput("vector must be a list of numbers") from exc
    if qvec.shape[0] != dimension:
        raise InvalidInput(
            f"vector has dimension {qvec.shape[0]}, collection {collection!r} expects {dimension}",
            details={"expected": dimension, "got": int(qvec.shape[0])},
        )
    if not np.isfinite(qvec).all():
        raise InvalidInput("vector contains NaN or infinity")
    return qvec
