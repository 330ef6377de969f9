"""RagStore: the one facade. The CLI, the HTTP API and Python users all call it; it owns the components.

`RagStore.open()` verifies the schema (and its migration checksums), opens the vector index and brings it
level with SQL (rebuild or outbox replay) before the first request, so a store that opens is consistent.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import text

from ragstore.analytics.feedback import record_feedback
from ragstore.analytics.recorder import QueryRecorder
from ragstore.analytics.summary import summarise
from ragstore.backup.manager import BackupManager
from ragstore.backup.readiness import readiness_report
from ragstore.backup.restore import restore_backup
from ragstore.cache.bus import EventBus
from ragstore.cache.layers import CacheLayers, request_digest, vector_digest
from ragstore.cache.versions import CollectionVersions
from ragstore.config import Settings, load_settings
from ragstore.consistency import KINDS, ConsistencyChecker, Repairer, ReportStore, vector_drift
from ragstore.db.engine import Database
from ragstore.db.identity import store_identity
from ragstore.db.models import EmbeddingUsage, OpState
from ragstore.db.state import read_state, write_state
from ragstore.documents.catalog import Catalog
from ragstore.documents.ingest import Ingestor, PreparedDocument
from ragstore.embeddings.base import Embedder, UsageRecord
from ragstore.embeddings.batching import QueryBatcher
from ragstore.embeddings.factory import create_embedder
from ragstore.errors import ConfigError, InvalidInput, NotFound, RagstoreError, Unavailable
from ragstore.lexical.factory import create_lexical_index
from ragstore.lexical.indexer import LexicalIndexer
from ragstore.migrations import Migrator
from ragstore.schemas import (
    CollectionInfo,
    DocumentInfo,
    DocumentInput,
    IngestOutcome,
    IngestReport,
    SearchHit,
    SearchResponse,
)
from ragstore.search.dense import DenseSearcher
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
from ragstore.sync.applier import OutboxApplier, RecoveryReport
from ragstore.sync.jobs import JobQueue
from ragstore.sync.outbox import queue_operation
from ragstore.sync.worker import SyncWorker
from ragstore.text.loaders import SUPPORTED_EXTENSIONS, LoadedDocument, load_bytes, load_path
from ragstore.vectors.base import VectorIndex
from ragstore.vectors.migration import BACKEND_KEY, IndexMigration, MigrationReport
from ragstore.vectors.registry import backend_spec, create_vector_index, migration_targets

if TYPE_CHECKING:
    from ragstore.cache.redis import RedisConnection

__all__ = ["RagStore", "restore_backup"]

log = logging.getLogger(__name__)
ProgressFn = Callable[[int, int, str], None]
MAX_K = MAX_DEPTH


class RagStore:
    """Open with `RagStore.open(settings)`; use as a context manager or call `close()`."""

    def __init__(self, settings: Settings, db: Database, index: VectorIndex, embedder: Embedder) -> None:
        self.settings = settings
        self.db = db
        self.index = index
        self.embedder = embedder
        self.lexical_indexer = LexicalIndexer(db, settings.lexical_analyzer)
        self.catalog = Catalog(db, on_create=self.lexical_indexer.register)
        self.applier = OutboxApplier(
            db,
            index,
            max_attempts=settings.sync_max_attempts,
            backoff_base_s=settings.sync_backoff_base_s,
            backoff_max_s=settings.sync_backoff_max_s,
            lease_s=settings.sync_lease_s,
            retain_s=settings.sync_retain_s,
        )
        self.applier.on_finished = self._announce_changes
        self.ingestor = Ingestor(
            db,
            self.catalog,
            embedder,
            self.lexical_indexer,
            max_tokens=settings.chunk_size_tokens,
            overlap_tokens=settings.chunk_overlap_tokens,
        )
        self.searcher = DenseSearcher(db, index)
        self.lexical = create_lexical_index(settings, db)
        self.engine = SearchEngine(db, self.searcher, self.lexical, candidates=settings.hybrid_candidates)
        self.recorder = QueryRecorder(db, enabled=settings.query_log, retain_days=settings.query_log_retain_days)
        self.query_batcher = QueryBatcher(embedder)
        self.jobs = JobQueue(db, lease_s=settings.sync_lease_s)
        self.redis = _open_redis(settings)
        store_id = f"{store_identity(db):x}"
        self.bus = (
            EventBus(self.redis, namespace=settings.cache_namespace, store=store_id) if self.redis is not None else None
        )
        self.cache = CacheLayers(
            max_entries=settings.cache_max_entries,
            embedding_ttl_s=settings.embedding_cache_ttl_s,
            search_ttl_s=settings.search_cache_ttl_s,
            session_ttl_s=settings.session_cache_ttl_s,
            redis=self.redis,
            namespace=settings.cache_namespace,
            store=store_id,
        )
        self.versions = CollectionVersions(self.catalog.write_version, self.bus, local_reads=db.is_sqlite)
        self._replica_versions: dict[int, int] = {}
        # Who sent an announcement: this store, not this process (a process may open several stores).
        self._instance = uuid.uuid4().hex
        if self.bus is not None:
            self.bus.subscribe(self._on_event)
            self.bus.on_reconnect(self.versions.forget)
        self.checker = ConsistencyChecker(db, index, stuck_after_s=settings.check_stuck_after_s)
        self.reports = ReportStore(db)
        self.repairer = Repairer(
            db,
            queue=lambda s, cid, kind, ids: queue_operation(s, cid, kind, ids),
            apply=self._apply_repairs,
            retry_dead=self.applier.retry_dead,
        )
        self.backups = BackupManager(
            settings,
            db,
            vector_backend=lambda: self.index.name,
            persist_index=self.persist,
            collection_ids=lambda: [ref.id for ref in self.catalog.active_refs()],
        )
        self.worker: SyncWorker | None = None
        self.recovery = RecoveryReport()
        self._closed = False

    # -- lifecycle -----------------------------------------------------------------------------------------
    @classmethod
    def open(
        cls,
        settings: Settings | None = None,
        *,
        embedder: Embedder | None = None,
        start_worker: bool = False,
        progress: Callable[[int, int], None] | None = None,
    ) -> RagStore:
        settings = settings or load_settings()
        db = Database(settings)
        try:
            Migrator(db.engine).ensure_current(auto_upgrade=settings.auto_migrate)
            settings = _active_backend(db, settings)
            chosen = embedder or create_embedder(settings, usage_sink=lambda record: _record_usage(db, record))
            store = cls(settings, db, create_vector_index(settings), chosen)
            store.recovery = store.applier.recover(progress=progress)
            store.recovery.relexed_collections = store.bring_lexical_current()
        except BaseException:
            db.dispose()
            raise
        recovery = store.recovery
        if recovery.rebuilt_collections or recovery.replayed_operations or recovery.applied_pending:
            log.info(
                "recovery: rebuilt %s, replayed %d operations, applied %d pending",
                recovery.rebuilt_collections,
                recovery.replayed_operations,
                recovery.applied_pending,
            )
        if store.bus is not None:
            store.bus.start()
        if start_worker:
            store.start_worker()
        return store

    def warm_up(self) -> None:
        """Load the embedding model and the analyzer now, not in the first request that needs them."""
        warm_up = getattr(self.embedder, "warm_up", None)
        if callable(warm_up):
            warm_up()
        self.lexical_indexer.target().terms("warm up")

    def start_worker(self) -> None:
        if self.worker is None:
            self.worker = SyncWorker(
                self.applier,
                self.index,
                poll_interval_s=self.settings.sync_poll_interval_s,
                persist_interval_s=self.settings.index_persist_interval_s,
            )
            self.worker.start()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.worker is not None:
            self.worker.stop()
        if self.bus is not None:
            self.bus.stop()
        self.query_batcher.close()
        self.recorder.close()
        with self.applier.lock:
            self.index.close()
        if self.redis is not None:
            self.redis.close()
        self.db.dispose()

    def __enter__(self) -> RagStore:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- collections ---------------------------------------------------------------------------------------
    def create_collection(
        self,
        name: str,
        *,
        description: str = "",
        embedding_model: str | None = None,
        dimension: int | None = None,
        metric: str = "cosine",
    ) -> CollectionInfo:
        """A new collection; by default it uses this store's embedder (its model and dimension).

        Name another `embedding_model` with its `dimension` for vectors you bring yourself.
        """
        model = embedding_model or self.embedder.model
        if model == self.embedder.model:
            if dimension not in (None, self.embedder.dimension):
                raise InvalidInput(f"model {model!r} has dimension {self.embedder.dimension}, not {dimension}")
            dimension = self.embedder.dimension
        elif dimension is None:
            raise InvalidInput(f"dimension is required for a collection with its own embedding model {model!r}")
        self.catalog.create_collection(
            name, embedding_model=model, dimension=dimension, metric=metric, description=description
        )
        return self.get_collection(name)

    def list_collections(self) -> list[CollectionInfo]:
        return self.catalog.list_collections()

    def get_collection(self, name: str) -> CollectionInfo:
        return self.catalog.get_collection(name)

    def delete_collection(self, name: str) -> None:
        """Delete a collection, its documents and its vectors (through the outbox)."""
        collection_id = self.catalog.begin_drop_collection(name)
        self._announce_changes({collection_id})
        self._sync()

    # -- ingest --------------------------------------------------------------------------------------------
    def _sync(self) -> None:
        """Apply what this call queued now; on failure the worker retries with backoff."""
        self.applier.apply_pending()

    # -- announcements between processes -------------------------------------------------------------------
    def _announce_changes(self, collection_ids: set[int]) -> None:
        """After a commit that changed collections: drop what this process knew, and tell the others."""
        for cid in collection_ids:
            self.versions.forget(cid)
            if self.bus is not None:
                self.bus.publish("collection", id=cid, sender=self._instance)

    def _on_event(self, event: dict[str, Any]) -> None:
        if event.get("sender") == self._instance:
            return
        if event.get("e") == "collection" and isinstance(event.get("id"), int):
            self.versions.forget(event["id"])
        if self.worker is not None:
            self.worker.wake()  # replay what another process finished, or claim what it queued

    def _store(self, collection: str, prepared: list[PreparedDocument], *, wait: bool = True) -> list[IngestOutcome]:
        outcomes = self.ingestor.ingest(collection, prepared, lease=wait)
        if any(o.status in ("added", "replaced") for o in outcomes):
            self._announce_changes({self.catalog.resolve(collection).id})
            if wait:
                self._sync()
                self._refresh_states(collection, outcomes)
            else:
                # Left unleased: this process's worker, or any `ragstore worker`, claims it.
                if self.bus is not None:
                    self.bus.publish("outbox", sender=self._instance)
                if self.worker is not None:
                    self.worker.wake()
        return outcomes

    def _refresh_states(self, collection: str, outcomes: list[IngestOutcome]) -> None:
        ids = [o.document_id for o in outcomes if o.document_id is not None and o.status in ("added", "replaced")]
        with self.db.read() as s:
            states = self.catalog.index_states(s, [int(i) for i in ids])
        for o in outcomes:
            if o.document_id in states:
                o.index_state = states[o.document_id]

    def add_documents(
        self, collection: str, documents: Sequence[DocumentInput | dict[str, Any]], *, wait: bool = True
    ) -> list[IngestOutcome]:
        """Store documents given as text (optionally pre-chunked, optionally with vectors).

        With `wait=False` the call returns once the documents are stored, with `index_state` pending; a sync
        worker (this process's, or any `ragstore worker` process) indexes them meanwhile, so a bulk load
        overlaps SQL writes with index insertion. `wait_for_index()` blocks until everything queued is
        searchable.
        """
        prepared = []
        for i, raw in enumerate(documents):
            doc = raw if isinstance(raw, DocumentInput) else DocumentInput.model_validate(raw)
            source = doc.source_uri or f"text:{i}"
            loaded = LoadedDocument(
                source_uri=source,
                title=doc.title or (doc.text.strip().splitlines() or [""])[0][:200],
                mime_type="text/plain",
                text=doc.text,
                size_bytes=len(doc.text.encode()),
                metadata=dict(doc.metadata),
            )
            chunks = [c.text for c in doc.chunks] if doc.chunks is not None else None
            vectors = None
            if doc.chunks is not None and any(c.vector is not None for c in doc.chunks):
                if any(c.vector is None for c in doc.chunks):
                    raise InvalidInput(f"{source}: give a vector for every chunk or for none")
                vectors = [np.asarray(c.vector, dtype=np.float32) for c in doc.chunks if c.vector is not None]
            prepared.append(self.ingestor.prepare(loaded, chunks=chunks, vectors=vectors))
            if not doc.source_uri:
                prepared[-1].loaded.source_uri = f"text:{prepared[-1].content_hash[:16]}"
        return self._store(collection, prepared, wait=wait)

    def wait_for_index(self, timeout_s: float = 600.0) -> None:
        """Block until no outbox operation is pending (raises Unavailable on timeout)."""
        deadline = time.monotonic() + timeout_s
        pause = 0.002
        while self.applier.has_pending():
            if time.monotonic() > deadline:
                raise Unavailable(f"the vector index did not catch up within {timeout_s:.0f} s")
            if self.worker is None:
                self.sync_now()
            else:
                # Polling backs off: every check takes the GIL and a SQL read from the worker it waits for.
                self.worker.wake()
                time.sleep(pause)
                pause = min(pause * 2, 0.05)

    def add_text(self, collection: str, text: str, **fields: Any) -> IngestOutcome:
        return self.add_documents(collection, [DocumentInput(text=text, **fields)])[0]

    def ingest_bytes(
        self,
        collection: str,
        data: bytes,
        filename: str,
        *,
        content_type: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> list[IngestOutcome]:
        """Store one uploaded file (a .jsonl file may hold several documents)."""
        self.get_collection(collection)  # an unknown collection is refused before any parsing
        loaded = load_bytes(data, filename, max_bytes=self.settings.max_document_bytes, content_type=content_type)
        for doc in loaded:
            doc.metadata = {**doc.metadata, **(metadata or {})}
        return self._store(collection, [self.ingestor.prepare(d) for d in loaded])

    def ingest_paths(
        self, collection: str, paths: Iterable[str | Path], *, progress: ProgressFn | None = None, batch_size: int = 16
    ) -> IngestReport:
        """Ingest files, folders (recursively) and globs; a bad file is reported as failed, not fatal."""
        self.get_collection(collection)
        files = expand_paths(paths)
        report = IngestReport(collection=collection)
        batch: list[PreparedDocument] = []

        def flush() -> None:
            if batch:
                report.outcomes.extend(self._store(collection, batch))
                batch.clear()

        for done, path in enumerate(files, start=1):
            try:
                for loaded in load_path(path, max_bytes=self.settings.max_document_bytes):
                    batch.append(self.ingestor.prepare(loaded))
            except RagstoreError as exc:
                report.outcomes.append(IngestOutcome(source_uri=str(path), status="failed", error=exc.message))
            if len(batch) >= batch_size:
                flush()
            if progress:
                progress(done, len(files), str(path))
        flush()
        return report

    # -- documents -----------------------------------------------------------------------------------------
    def list_documents(self, collection: str, *, limit: int = 100, offset: int = 0) -> list[DocumentInfo]:
        return self.catalog.list_documents(collection, limit=limit, offset=offset)

    def get_document(self, collection: str, document_id: int, *, with_chunks: bool = False) -> DocumentInfo:
        return self.catalog.get_document(collection, document_id, with_chunks=with_chunks)

    def delete_document(self, collection: str, document_id: int) -> None:
        """Hide the document now, remove its vectors, then its rows (the outbox's two phases)."""
        self.catalog.begin_delete_document(collection, document_id)
        self._announce_changes({self.catalog.resolve(collection).id})
        self._sync()

    # -- search --------------------------------------------------------------------------------------------
    def search(
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
    ) -> SearchResponse:
        """The best k chunks for `query` (text) and/or `vector`: dense, lexical, or hybrid (the default).

        Hybrid fuses the dense and lexical rankings (search/hybrid.py); with only a vector it runs dense, and
        with only a text on a collection whose model this server cannot embed, lexical: the response's `mode`
        says which ran. Only chunks SQL holds as indexed, of active documents, are returned. `cursor` (from a
        previous response's `next_cursor`) continues a search; `offset` skips results directly.
        """
        started = time.perf_counter()
        options = make_options(
            self.settings,
            mode=mode,
            k=k,
            offset=offset,
            min_score=min_score,
            explain=explain,
            rrf_k=rrf_k,
            dense_weight=dense_weight,
            lexical_weight=lexical_weight,
            min_coverage=min_coverage,
        )
        if query is None and vector is None:
            raise InvalidInput("give a query (text), a vector, or both")
        if query is not None and (not isinstance(query, str) or not query.strip()):
            raise InvalidInput("query is empty")
        ref = self.catalog.resolve(collection)
        coll_id, model, dimension = ref.id, ref.embedding_model, ref.dimension
        qvec: np.ndarray | None = None
        if vector is not None:
            qvec = _checked_vector(vector, dimension, collection)
        can_embed = query is not None and model == self.embedder.model
        run_mode = self._run_mode(options.mode, has_vector=qvec is not None or can_embed, has_text=query is not None)
        if run_mode == "dense" and qvec is None and query is not None and not can_embed:
            raise InvalidInput(
                f"collection {collection!r} holds vectors of model {model!r}, which this server cannot embed "
                f"(it embeds with {self.embedder.model!r}): search it by vector, or with mode lexical"
            )
        asked = [query, vector_digest(qvec) if qvec is not None else None]
        fingerprint = request_fingerprint([coll_id, asked, filter, options.key_parts()[:2], options.key_parts()[3:]])
        if cursor is not None:
            if offset:
                raise InvalidInput("give offset or cursor, not both")
            options = dataclasses.replace(options, offset=decode_cursor(cursor, fingerprint))
            if options.offset + options.k > MAX_DEPTH:
                raise InvalidInput(f"the cursor is past the deepest page (offset + k at most {MAX_DEPTH})")
        version = self.versions.current(coll_id)
        if self._replica_versions.get(coll_id) != version:
            # Another process changed the collection: bring this process's index replica level first.
            self.applier.advance()
            self.lexical_indexer.forget(coll_id)
            self._replica_versions[coll_id] = version
        results = self.cache.search
        key = self._result_key(coll_id, version, asked, options, filter)
        cached = results.get(key)
        if cached is not None:
            _ids, _, body = cached.partition(b"\n")
            found = json.loads(body)
            hits = [SearchHit(**hit) for hit in found["hits"]]
            dropped, run_mode, next_cursor = int(found["dropped"]), found["mode"], found["next_cursor"]
        else:
            if run_mode != "lexical" and qvec is None:
                assert query is not None
                qvec = self._query_vector(query)
            terms = None
            if query is not None and run_mode != "dense":
                try:
                    terms = self.lexical_indexer.query(coll_id, query)
                except Unavailable:
                    if run_mode == "lexical":
                        raise
                    log.warning("collection %r: lexical side unavailable, searching dense only", collection)
                    run_mode = "dense"
            ranked = self.engine.run(coll_id, run_mode, options, vector=qvec, terms=terms, filter_spec=filter)
            hits, dropped = ranked.hits, ranked.dropped
            next_cursor = (
                encode_cursor(options.offset + options.k, fingerprint)
                if ranked.has_more and options.offset + 2 * options.k <= MAX_DEPTH
                else None
            )
            results.set(key, _result_bytes(hits, dropped, run_mode, next_cursor))
        took = round((time.perf_counter() - started) * 1000, 3)
        self.recorder.record(
            coll_id,
            query,
            mode=run_mode,
            k=options.k,
            chunk_ids=tuple(h.chunk_id for h in hits),
            latency_ms=took,
            cache_hit=cached is not None,
            filtered=bool(filter),
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
        )

    @staticmethod
    def _run_mode(requested: Mode, *, has_vector: bool, has_text: bool) -> Mode:
        if requested == "lexical" and not has_text:
            raise InvalidInput("a lexical search needs a query text")
        if requested == "hybrid":
            if has_vector and has_text:
                return "hybrid"
            return "dense" if has_vector else "lexical"
        return requested

    def cached_search_json(
        self,
        collection: str,
        query: str | None = None,
        *,
        vector: Sequence[float] | None = None,
        k: int = 10,
        filter: dict[str, Any] | None = None,
        **options: Any,
    ) -> bytes | None:
        """The whole response body of `search`, if this process holds it in its result cache; else None.

        For the HTTP server's event loop: it never waits on the network (the version comes from the event
        bus's knowledge or a local SQLite read) and never raises for bad input (None sends the request down
        the full path, which reports the problem).
        """
        started = time.perf_counter()
        ref = self.catalog.cached_ref(collection)
        if ref is None:
            return None
        version = self.versions.known_without_waiting(ref.id)
        if version is None or self._replica_versions.get(ref.id) != version:
            return None
        cursor = options.pop("cursor", None)
        try:
            normal = make_options(self.settings, k=k, **options)
            qvec = np.asarray(vector, dtype=np.float32).reshape(-1) if vector is not None else None
        except (RagstoreError, TypeError, ValueError):
            return None
        if query is None and qvec is None:
            return None
        asked = [query, vector_digest(qvec) if qvec is not None else None]
        if cursor is not None:
            if normal.offset:
                return None
            fingerprint = request_fingerprint([ref.id, asked, filter, normal.key_parts()[:2], normal.key_parts()[3:]])
            try:
                normal = dataclasses.replace(normal, offset=decode_cursor(cursor, fingerprint))
            except RagstoreError:
                return None
        results = self.cache.search
        key = self._result_key(ref.id, version, asked, normal, filter)
        stored = results.local.get(key) if results.enabled else None
        if stored is None:
            return None  # the full path counts the miss (and asks Redis)
        results.stats.count("hits_local")
        ids_line, _, body = stored.partition(b"\n")
        head = json.dumps(
            {"collection": collection, "query": query, "k": k, "offset": normal.offset}, ensure_ascii=False
        )[:-1].encode()
        took = round((time.perf_counter() - started) * 1000, 3)
        chunk_ids = tuple(int(i) for i in ids_line.split(b",")) if ids_line else ()
        mode = _stored_mode(body)
        self.recorder.record(
            ref.id,
            query,
            mode=mode,
            k=k,
            chunk_ids=chunk_ids,
            latency_ms=took,
            cache_hit=True,
            filtered=bool(filter),
        )
        return head + b"," + body[1:-1] + f',"took_ms":{took},"cached":true}}'.encode()

    def _result_key(
        self, collection_id: int, version: int, asked: list[Any], options: SearchOptions, filter: dict[str, Any] | None
    ) -> str:
        """The L2 key: the same for the full path and the event loop's fast path, or neither would hit."""
        return self.cache.search.key(collection_id, version, request_digest([asked, filter, options.key_parts()]))

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

    # -- the lexical index ---------------------------------------------------------------------------------
    def bring_lexical_current(self, progress: Callable[[int, int], None] | None = None) -> list[int]:
        """Re-index every collection whose terms another analyzer built (or none yet); returns their ids."""
        done = []
        for ref in self.catalog.active_refs():
            if not self.lexical_indexer.is_current(self.lexical_indexer.state(ref.id, fresh=True)):
                self.lexical_indexer.reindex(ref.id, progress=progress)
                self._announce_changes({ref.id})
                done.append(ref.id)
        return done

    def reindex_lexical(
        self, collection: str | None = None, *, progress: Callable[[int, int], None] | None = None
    ) -> dict[str, int]:
        """Rebuild lexical terms with the configured analyzer (all collections, or one), even if current."""
        targets = [self.catalog.resolve(collection)] if collection is not None else self.catalog.active_refs()
        out = {}
        for ref in targets:
            out[ref.name] = self.lexical_indexer.reindex(ref.id, progress=progress, force=True)
            self._announce_changes({ref.id})
        return out

    def lexical_status(self) -> list[dict[str, Any]]:
        target = self.lexical_indexer.target()
        out = []
        for ref in self.catalog.active_refs():
            state = self.lexical_indexer.state(ref.id, fresh=True)
            out.append(
                {
                    "collection": ref.name,
                    "analyzer": state.analyzer if state else None,
                    "version": state.version if state else None,
                    "current": self.lexical_indexer.is_current(state),
                    "configured": f"{target.name} {target.version}",
                }
            )
        return out

    # -- feedback and analytics ----------------------------------------------------------------------------
    def record_feedback(
        self,
        collection: str,
        *,
        query: str,
        chunk_id: int,
        relevant: bool,
        mode: str | None = None,
        comment: str = "",
    ) -> int:
        """A user's judgement of one result of `query`; returns the feedback id."""
        ref = self.catalog.resolve(collection)
        return record_feedback(
            self.db, ref.id, collection, query=query, chunk_id=chunk_id, relevant=relevant, mode=mode, comment=comment
        )

    def analytics(self, collection: str, *, days: int = 7, top: int = 10) -> dict[str, Any]:
        """The query log, feedback and chunk counters of a collection, summarised over the last `days`."""
        if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= 3650:
            raise InvalidInput(f"days must be an integer from 1 to 3650, got {days!r}")
        if isinstance(top, bool) or not isinstance(top, int) or not 1 <= top <= 100:
            raise InvalidInput(f"top must be an integer from 1 to 100, got {top!r}")
        ref = self.catalog.resolve(collection)
        self.recorder.flush()
        return summarise(self.db, ref.id, collection, days=days, top=top)

    # -- consistency ---------------------------------------------------------------------------------------
    def check_consistency(
        self,
        collection: str | None = None,
        *,
        repair: bool = False,
        trigger: str = "manual",
        slot: str | None = None,
    ) -> dict[str, Any] | None:
        """Compare SQL with the vector index, store the report, and (with `repair`) mend the safe kinds.

        Returns the stored report: `counts` what the check found by kind, `remaining` what is left after
        the repairs, `previous` the last run over the same scope and `changes` the difference. None when
        `slot` was already taken by another process (scheduled runs).
        """
        if collection is not None:
            self.catalog.resolve(collection)
        report_id = self.reports.start(
            trigger=trigger, backend=self.index.name, collection=collection, repair=repair, slot=slot
        )
        if report_id is None:
            return None
        started = time.perf_counter()
        try:
            self.applier.advance()  # this replica level with every finished operation first
            result = self.checker.check(collection)
            found = result.counts()
            details: dict[str, Any] = {
                "findings": [f.to_dict() for f in result.findings],
                "collections": result.collections,
                "kinds": {k.value: {"safe": i.safe, "meaning": i.meaning} for k, i in KINDS.items()},
            }
            remaining = found
            if repair and result.findings:
                details["repairs"] = self.repairer.repair(result).to_dict()
                if any(KINDS[f.kind].safe for f in result.findings):
                    self.persist()
                    after = self.checker.check(collection)
                    remaining = after.counts()
                    details["remaining_findings"] = [f.to_dict() for f in after.findings]
            details["remaining"] = remaining
            previous = self.reports.previous(report_id, collection)
            details["previous"] = previous
            details["changes"] = (
                {k: n - int(previous["counts"].get(k, 0)) for k, n in found.items()} if previous else None
            )
        except Exception as exc:
            self.reports.finish(
                report_id,
                counts={},
                details={},
                duration_ms=(time.perf_counter() - started) * 1000,
                error=f"{type(exc).__name__}: {exc}",
            )
            raise
        self.reports.finish(
            report_id, counts=found, details=details, duration_ms=round((time.perf_counter() - started) * 1000, 1)
        )
        report = self.reports.get(report_id)
        assert report is not None
        log.log(
            logging.WARNING if sum(remaining.values()) else logging.INFO,
            "consistency check %d (%s): found %s, remaining %s",
            report_id,
            trigger,
            {k: n for k, n in found.items() if n},
            {k: n for k, n in remaining.items() if n},
        )
        return report

    def consistency_history(self, limit: int = 20) -> list[dict[str, Any]]:
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 1000:
            raise InvalidInput(f"limit must be an integer from 1 to 1000, got {limit!r}")
        return self.reports.history(limit)

    def consistency_report(self, report_id: int | None = None) -> dict[str, Any]:
        """A stored report by id, or the newest finished one."""
        report = self.reports.latest() if report_id is None else self.reports.get(report_id)
        if report is None:
            raise NotFound("no consistency report yet" if report_id is None else f"no consistency report {report_id}")
        return report

    def reembed(self, collection: str) -> dict[str, int]:
        """Embed again the chunks of a collection that lack a usable embedding (wrong dimension or none)."""
        result = self.ingestor.reembed(collection)
        if result["queued"]:
            self._announce_changes({self.catalog.resolve(collection).id})
            self._sync()
        return result

    def migrate_index(self, target: str, *, progress: Callable[[str, int, int], None] | None = None) -> MigrationReport:
        """Rebuild the vectors in another backend from SQL, verify it agrees, and switch the store to it.

        Resumes an interrupted migration to the same target. Other processes keep their open index until
        they restart; the target's settings (MILVUS_URI, CHROMA_URL, ...) come from this store's Settings.
        """
        if target not in migration_targets():
            raise InvalidInput(f"--to must be one of {', '.join(migration_targets())} (got {target!r})")
        if target == self.index.name:
            raise InvalidInput(f"the store's vectors are already in {target}")
        target_settings = self.settings.model_copy(update={"vector_backend": target})
        target_index = create_vector_index(target_settings)
        try:
            migration = IndexMigration(
                self.db,
                self.index,
                target_index,
                target_name=target,
                records=self.applier.records,
                drift=vector_drift(self.db),
            )
            with self.applier.lock:
                self.applier.advance()
            return migration.run(progress)
        finally:
            target_index.close()

    # -- backups -------------------------------------------------------------------------------------------
    def backup(
        self, kind: str = "incremental", *, note: str | None = None, trigger: str = "cli", slot: str | None = None
    ) -> dict[str, Any] | None:
        """One consistent backup of the database and (for file-based indexes) the vector index.

        `incremental` stores only blocks the repository lacks, `full` writes every block anew, `snapshot`
        is the database alone. None when `slot` was taken by another process (scheduled runs).
        """
        return self.backups.create(kind, note=note, trigger=trigger, slot=slot)

    def list_backups(self) -> list[dict[str, Any]]:
        return self.backups.summaries()

    def show_backup(self, backup_id: str) -> dict[str, Any]:
        return self.backups.show(backup_id)

    def verify_backups(
        self, backup_id: str | None = None, *, every: bool = False, trigger: str = "cli"
    ) -> list[dict[str, Any]]:
        return self.backups.verify(backup_id, every=every, trigger=trigger)

    def prune_backups(self, *, dry_run: bool = False, trigger: str = "cli") -> dict[str, Any]:
        return self.backups.prune(dry_run=dry_run, trigger=trigger)

    def backup_status(self) -> dict[str, Any]:
        return self.backups.status()

    def backup_history(self, limit: int = 50) -> list[dict[str, Any]]:
        return self.backups.history(limit)

    def restore_copy(self, backup_id: str, to: str) -> dict[str, Any]:
        """Restore a backup beside this (open, live) store: into a new folder or database, never over it."""
        if not to or not isinstance(to, str):
            raise InvalidInput("to: a folder (SQLite) or postgresql:// URL to restore into is required")
        return restore_backup(self.settings, backup_id, to=to)

    def dr_report(self) -> dict[str, Any]:
        return readiness_report(self.backups)

    def _apply_repairs(self) -> tuple[int, int]:
        stats = self.applier.apply_pending(ignore_schedule=True)
        return stats.applied, stats.failed

    # -- operations ----------------------------------------------------------------------------------------
    def sync_now(self) -> dict[str, int]:
        stats = self.applier.apply_pending(ignore_schedule=True)
        return {"applied": stats.applied, "failed": stats.failed, "dead": stats.dead}

    def persist(self) -> None:
        with self.applier.lock:
            self.index.persist()
            self.applier.prune_done()

    def rebuild_index(
        self, collection: str | None = None, *, progress: Callable[[int, int], None] | None = None
    ) -> dict[str, int]:
        """Rebuild vector indexes from the chunks and embeddings in SQL; no embedding call is made."""
        targets = [self.catalog.resolve(collection)] if collection is not None else self.catalog.active_refs()
        return {ref.name: self.applier.rebuild(ref.id, progress=progress) for ref in targets}

    def outbox_counts(self) -> dict[str, int]:
        return self.applier.counts()

    def health(self) -> dict[str, Any]:
        """Liveness of each component; `status` is ok, degraded (serving, something behind) or down."""
        components: dict[str, Any] = {"database": self.database_health()}
        outbox = self.outbox_counts()
        retrying, last_error = self.applier.failing()
        components["vector_index"] = {
            # Degraded while writes wait on the index (it failed, they retry) or were dead-lettered:
            # the documents are stored, their chunks pending, and searchable once the index catches up.
            "status": "degraded" if outbox[OpState.DEAD] or retrying else "ok",
            "backend": self.index.name,
            "pending_operations": outbox[OpState.PENDING],
            "retrying_operations": retrying,
            "last_error": last_error,
            "dead_operations": outbox[OpState.DEAD],
            # This process's replica of the index: the outbox position it has reached.
            "replica": {"owner": self.applier.owner, "watermark": self.applier.watermark},
        }
        components["cache"] = self.cache.status()
        if self.bus is not None:
            components["events"] = self.bus.status()
        components["embedder"] = {"status": "ok", "backend": self.embedder.backend, "model": self.embedder.model}
        if self.worker is not None:
            components["sync_worker"] = {
                "status": "ok" if self.worker.alive and not self.worker.last_error else "degraded",
                "last_error": self.worker.last_error,
            }
        statuses = [c["status"] for c in components.values()]
        overall = "down" if "down" in statuses else "degraded" if "degraded" in statuses else "ok"
        counters = self.searcher.counters
        return {
            "status": overall,
            "components": components,
            "search": {
                "searches": counters.searches,
                "dropped_hits": counters.dropped_hits,
                "orphan_hits": counters.orphan_hits,
                "lexical_backend": self.lexical.name,
                "analyzer": self.settings.lexical_analyzer,
                "query_log": {
                    "enabled": self.recorder.enabled,
                    "written": self.recorder.written,
                    "dropped": self.recorder.dropped,
                },
            },
        }

    def database_health(self) -> dict[str, Any]:
        started = time.perf_counter()
        try:
            with self.db.read() as s:
                s.execute(text("SELECT 1"))
                revision = Migrator(self.db.engine).current()
        except Exception as exc:
            return {"status": "down", "error": f"{type(exc).__name__}: {exc}"}
        return {
            "status": "ok",
            "dialect": self.db.engine.dialect.name,
            "revision": revision,
            "latency_ms": round((time.perf_counter() - started) * 1000, 3),
        }


def _active_backend(db: Database, settings: Settings) -> Settings:
    """The settings with the vector backend the store's vectors live in (recorded in `store_state`).

    A new store records the configured backend. After `ragstore index migrate` the recorded one wins when
    RAGSTORE_VECTOR_BACKEND is not set; a setting that names another backend is refused, since a store
    opened on the wrong backend would see none of its vectors (the in-memory test backend excepted: it is
    rebuilt from SQL on every open).
    """
    recorded = read_state(db, BACKEND_KEY)
    if recorded is None:
        if backend_spec(settings.vector_backend).persistent:
            write_state(db, BACKEND_KEY, {"backend": settings.vector_backend})
        return settings
    backend = str(recorded.get("backend"))
    if backend == settings.vector_backend or not backend_spec(settings.vector_backend).persistent:
        return settings
    if "vector_backend" in settings.model_fields_set:
        raise ConfigError(
            f"RAGSTORE_VECTOR_BACKEND={settings.vector_backend}, but this store's vectors are in {backend} "
            f"(switched by `ragstore index migrate`): set it to {backend}, unset it, or move the vectors with "
            f"`ragstore index migrate --to {settings.vector_backend}`"
        )
    return settings.model_copy(update={"vector_backend": backend})


def _open_redis(settings: Settings) -> RedisConnection | None:
    """The Redis connection pool when REDIS_URL is set (redis-py is the `redis` extra, imported only then)."""
    if not settings.redis_url:
        return None
    try:
        from ragstore.cache.redis import RedisConnection
    except ImportError as exc:
        raise ConfigError(
            "REDIS_URL is set, but the redis package is not installed: pip install 'ragstore[redis]'"
        ) from exc
    return RedisConnection(
        settings.redis_url,
        max_connections=settings.redis_max_connections,
        timeout_s=settings.redis_timeout_s,
        retry_after_s=settings.redis_retry_after_s,
    )


_HIT_FIELDS = tuple(f.name for f in dataclasses.fields(SearchHit))


def _result_bytes(hits: list[SearchHit], dropped: int, mode: str, next_cursor: str | None) -> bytes:
    """An L2 entry: the chunk ids (for the query log of a cached answer), a newline, the response's JSON
    fields. Compact JSON escapes every newline inside strings, so the first newline is the separator."""
    # Field by field, not dataclasses.asdict: asdict deep-copies every value, which cost 0.4 ms a search.
    rows = [{name: getattr(h, name) for name in _HIT_FIELDS} for h in hits]
    body = json.dumps(
        {"mode": mode, "hits": rows, "next_cursor": next_cursor, "dropped": dropped},
        separators=(",", ":"),
        ensure_ascii=False,
        default=str,
    ).encode()
    return ",".join(str(h.chunk_id) for h in hits).encode() + b"\n" + body


def _stored_mode(body: bytes) -> str:
    """The mode of an L2 entry's JSON, which starts `{"mode":"..."` (see _result_bytes)."""
    end = body.find(b'"', 9)
    return body[9:end].decode() if body.startswith(b'{"mode":"') and end > 9 else "unknown"


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


def _record_usage(db: Database, record: UsageRecord) -> None:
    """Store what a paid embedding call cost; a failure to record never fails the call itself."""
    if record.backend == "local":
        return  # free and frequent: not worth a row per call
    try:
        db.write(
            lambda s: s.add(
                EmbeddingUsage(
                    backend=record.backend,
                    model=record.model,
                    inputs=record.inputs,
                    tokens=record.tokens,
                    cost_usd=record.cost_usd,
                    duration_ms=record.duration_ms,
                    attempts=record.attempts,
                )
            )
        )
    except Exception:
        log.exception("could not record embedding usage %s", record)


def expand_paths(paths: Iterable[str | Path]) -> list[Path]:
    """Files named directly, files of supported types under folders, and glob matches, sorted, no repeats."""
    import glob

    found: list[Path] = []
    for raw in paths:
        raw_str = str(raw)
        matches = (
            [Path(m) for m in sorted(glob.glob(raw_str, recursive=True))]
            if glob.has_magic(raw_str)
            else [Path(raw_str)]
        )
        if not matches:
            raise InvalidInput(f"{raw_str}: no file matches")
        for path in matches:
            if path.is_dir():
                found.extend(
                    sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in SUPPORTED_EXTENSIONS)
                )
            elif path.is_file():
                found.append(path)
            else:
                raise InvalidInput(f"{raw_str}: no such file or folder")
    seen: set[Path] = set()
    unique = []
    for p in found:
        if p.resolve() not in seen:
            seen.add(p.resolve())
            unique.append(p)
    return unique
