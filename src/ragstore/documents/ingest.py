"""Ingest: text -> chunks -> embeddings (SQL cache first) -> one transaction of rows plus outbox.

Everything that can fail on bad input (loading, chunking, vector shapes, embedding) happens before the
transaction, so a refused document leaves nothing behind. The transaction itself writes the document,
its chunks in state `pending`, new embeddings and the outbox operations; the applier does the rest.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import KW_ONLY, dataclass
from functools import partial
from typing import Any, cast

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import Table, and_, delete, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ragstore.clock import SYSTEM_CLOCK, Clock
from ragstore.db.batches import in_batches
from ragstore.db.bulk import insert_many
from ragstore.db.engine import Database
from ragstore.db.facets import insert_facets
from ragstore.db.ids import allocate_ids
from ragstore.db.models import ChunkStatus, Document, DocumentChunk, DocumentStatus, Embedding, OpKind, utcnow
from ragstore.db.versions import bump_write_version
from ragstore.documents.catalog import Catalog
from ragstore.documents.companion import Companion, EmbeddingRows, insert_embeddings
from ragstore.documents.holders import PreparedDocument, holders
from ragstore.documents.write_guards import ReusedEmbeddingRemoved, active_by_source, removed_embeddings
from ragstore.embeddings.base import Embedder
from ragstore.errors import Conflict, InvalidInput
from ragstore.lexical.base import lexeme_rows, lexical_text, write_lexemes
from ragstore.lexical.indexer import AnalyzerState, LexicalIndexer
from ragstore.schemas import IngestOutcome
from ragstore.sync.outbox import queue_operation
from ragstore.telemetry import INGEST_STAGE_DURATION, count_ingested
from ragstore.text.chunking import chunk_text, count_tokens
from ragstore.text.hashing import content_hash, normalize_text
from ragstore.text.limits import check_stopping
from ragstore.text.loaders import LoadedDocument
from ragstore.valid_text import checked_json, checked_text, without_nul

__all__ = ["ChunkProgressFn", "Ingestor", "PreparedDocument"]

ChunkProgressFn = Callable[[str, int], None]  # ("embedded" | "stored", how many chunks)

ACTIVE_SOURCE_INDEX = "uq_documents_active_source"
SOURCE_RETRIES = 3
# SQLite names the columns of a violated unique index, not the index.
SQLITE_SOURCE_COLUMNS = "documents.collection_id, documents.source_uri"


def _check_strings(loaded: LoadedDocument) -> None:
    """Every string of the document is storable (valid_text.py): refused naming the field, or, for NUL in
    the text or the title (both may come from an extracted file), removed, the same on both dialects. Every
    face (API, CLI, Python, files) passes here."""
    checked_text(loaded.source_uri, "source_uri")
    # The text before the title: a file's title is often its first line, and the text is where it came from.
    loaded.text = without_nul(checked_text(loaded.text, "text", allow_nul=True))
    loaded.title = without_nul(checked_text(loaded.title, "title", allow_nul=True))
    checked_text(loaded.mime_type, "mime_type")
    checked_json(loaded.metadata, "metadata")


# Core tables: bulk inserts skip the ORM's per-row bookkeeping.
DOCUMENTS = cast(Table, Document.__table__)
CHUNKS = cast(Table, DocumentChunk.__table__)
EMBEDDINGS = cast(Table, Embedding.__table__)
_INSERT_DOCUMENTS = insert(DOCUMENTS)
_INSERT_CHUNKS = insert(CHUNKS)


@dataclass
class _Planned:
    doc: PreparedDocument
    chunk_hashes: list[str]
    replaces: list[int]


@dataclass
class Ingestor:
    db: Database
    catalog: Catalog
    embedder: Embedder
    lexical: LexicalIndexer
    _: KW_ONLY
    max_tokens: int
    overlap_tokens: int
    clock: Clock = SYSTEM_CLOCK  # dates queued outbox operations, as the applier's clock reads them
    stopping: threading.Event | None = None  # the store's shutdown, checked between embedding batches
    embed_slice: int = 64  # texts per embed call: how often a shutdown is noticed while embedding
    companion: Companion | None = None  # the cross-lingual second embedding (documents/companion.py)

    def prepare(
        self, loaded: LoadedDocument, *, chunks: list[str] | None = None, vectors: Sequence[Any] | None = None
    ) -> PreparedDocument:
        """Chunk (or take the caller's chunks) and validate; raises InvalidInput, stores nothing."""
        started = time.perf_counter()
        check_stopping(self.stopping, loaded.source_uri)
        _check_strings(loaded)
        if chunks is None and loaded.chunks:
            chunks = loaded.chunks  # the format decided its own chunks (a CSV's row groups, header kept)
        if chunks is not None:
            texts = [normalize_text(without_nul(checked_text(c, "chunks.text", allow_nul=True))) for c in chunks]
            if not texts or any(not t for t in texts):
                raise InvalidInput(f"{loaded.source_uri}: chunks must be a non-empty list of non-empty texts")
            if not loaded.text:
                loaded.text = "\n\n".join(texts)
        else:
            loaded.text = normalize_text(loaded.text)
            if not loaded.text:
                raise InvalidInput(f"{loaded.source_uri}: contains no text")
            texts = [
                c.text
                for c in chunk_text(
                    loaded.text,
                    max_tokens=self.max_tokens,
                    overlap_tokens=self.overlap_tokens,
                    checkpoint=lambda: check_stopping(self.stopping, loaded.source_uri),
                )
            ]
            check_stopping(self.stopping, loaded.source_uri)
        matrix: NDArray[np.float32] | None = None
        if vectors is not None:
            if len(vectors) != len(texts):
                raise InvalidInput(f"{loaded.source_uri}: {len(vectors)} vectors given for {len(texts)} chunks")
            try:
                matrix = np.asarray(vectors, dtype=np.float32)
            except (ValueError, TypeError) as exc:
                raise InvalidInput(f"{loaded.source_uri}: vectors must be lists of numbers of one length") from exc
            if matrix.ndim != 2:
                raise InvalidInput(f"{loaded.source_uri}: vectors must be lists of numbers of one length")
            if not np.isfinite(matrix).all():
                raise InvalidInput(f"{loaded.source_uri}: vectors contain NaN or infinity")
        INGEST_STAGE_DURATION.labels("chunk").observe(time.perf_counter() - started)
        return PreparedDocument(
            loaded=loaded, chunk_texts=texts, vectors=matrix, content_hash=content_hash(loaded.text)
        )

    # -- the write -----------------------------------------------------------------------------------------
    def ingest(
        self,
        collection: str,
        docs: list[PreparedDocument],
        *,
        lease: bool = True,
        on_chunks: ChunkProgressFn | None = None,
        keep_duplicates: bool = False,
        dry_run: bool = False,
    ) -> list[IngestOutcome]:
        """Store a batch of prepared documents; returns one outcome per document, in order.

        A document whose content another active document holds under another source is a `duplicate`
        (naming that source), not stored, unless `keep_duplicates` (then stored as its own document, its
        chunks sharing the other's embeddings: they are keyed by content hash) or its own source already
        has an active document (then that one is replaced: the old content must not stay searchable).
        `dry_run`: the outcomes as they would be, nothing embedded or stored.

        `lease`: the outbox operation is leased to this process, which applies it inline; without, it is
        left for any worker to claim. `on_chunks("embedded", n)` is called as chunks get their vectors (a
        slice at a time, or at once for vectors already known), `on_chunks("stored", n)` when their
        transaction commits: what a progress bar counts between files (documents/progress.py).
        """
        with self.db.read() as s:
            coll = self.catalog.get_row(s, collection)
            coll_id, model, dimension = coll.id, coll.embedding_model, coll.dimension
            lexical_state = LexicalIndexer.read_state(s, coll_id)
            existing, has_active = holders(s, coll_id, docs)

        outcomes: list[IngestOutcome | None] = [None] * len(docs)
        planned: list[tuple[int, _Planned]] = []
        seen: dict[str, str] = {}  # content hash -> the source first planned with it in this batch
        sources: dict[str, str] = {}
        for pos, doc in enumerate(docs):
            src = doc.loaded.source_uri
            held = existing.get(doc.content_hash, [])
            same = next((h for h in held if h.source_uri == src), None)
            # The same text under a new title or metadata replaces the document (its embeddings are reused).
            if (same is not None and same.holds_as_is(doc)) or seen.get(doc.content_hash) == src:
                doc_id, title = (same.document_id, same.title) if same is not None else (None, doc.loaded.title)
                outcomes[pos] = IngestOutcome(source_uri=src, status="unchanged", document_id=doc_id, title=title)
                continue
            other = held[0].source_uri if held else seen.get(doc.content_hash)
            if other is not None and not keep_duplicates and src not in has_active:
                held_by = held[0].document_id if held else None
                outcomes[pos] = IngestOutcome(
                    source_uri=src, status="duplicate", document_id=held_by, title=doc.loaded.title, duplicate_of=other
                )
                continue
            seen.setdefault(doc.content_hash, src)
            if sources.setdefault(src, doc.content_hash) != doc.content_hash:
                # Which of the two should stay active is the caller's to say; refuse before anything is stored.
                raise InvalidInput(
                    f"{src}: source_uri given twice with different content in one request",
                    details={"field": "source_uri", "source_uri": src},
                )
            if doc.vectors is not None and doc.vectors.shape[1] != dimension:
                raise InvalidInput(
                    f"{src}: vectors have dimension {doc.vectors.shape[1]}, "
                    f"collection {collection!r} expects {dimension}"
                )
            planned.append((pos, _Planned(doc, [content_hash(t) for t in doc.chunk_texts], [])))

        if dry_run:
            for pos, plan in planned:
                outcomes[pos] = IngestOutcome(
                    source_uri=plan.doc.loaded.source_uri,
                    status="replaced" if plan.doc.loaded.source_uri in has_active else "added",
                    title=plan.doc.loaded.title,
                    chunks=len(plan.doc.chunk_texts),
                )
            return [o for o in outcomes if o is not None]
        if planned:
            plans = [p for _, p in planned]
            # Analysed before the transaction (kiwi is the slow part), with the analyzer the collection's
            # terms were built with; `_write` checks that it has not changed meanwhile.
            with INGEST_STAGE_DURATION.labels("analyse").time():
                analyzer = self.lexical.analyzer_for(lexical_state)
                terms = analyzer.terms_batch(
                    [lexical_text(plan.doc.loaded.title, text) for plan in plans for text in plan.doc.chunk_texts]
                )
            for attempt in (1, 2):  # twice only if a cleanup removed an embedding it reuses (write_guards.py)
                with INGEST_STAGE_DURATION.labels("embed").time():
                    new_vectors = self._vectors_to_store(model, dimension, plans, collection, on_chunks)
                    pairs = {h: t for p in plans for h, t in zip(p.chunk_hashes, p.doc.chunk_texts, strict=True)}
                    # The companion's vectors at ingest only where ragstore embeds the collection itself: for
                    # vectors a caller brings (a LangChain or LlamaIndex store) the bridge fusion computes
                    # them for its candidates on first use, and an add costs no second model.
                    companion = self.companion if model == self.embedder.model else None
                    extra = companion.rows_for_ingest(pairs, terms) if companion is not None else None
                # The last point before the transaction: a shutdown now stores nothing at all.
                check_stopping(self.stopping, collection)
                try:
                    write = partial(
                        self._write, coll_id=coll_id, model=model, dimension=dimension, collection=collection
                    )
                    ids = self._write_retrying(
                        partial(
                            write,
                            plans=plans,
                            vectors=new_vectors,
                            lease=lease,
                            lexical=(lexical_state, terms),
                            extra=extra,
                        ),
                        collection,
                    )
                    break
                except ReusedEmbeddingRemoved as exc:
                    if attempt == 2:
                        raise Conflict(
                            f"stored embeddings of {collection!r} were removed during the ingest; retry"
                        ) from exc
            if on_chunks is not None:
                on_chunks("stored", sum(len(plan.doc.chunk_texts) for plan in plans))
            for (pos, plan), doc_id in zip(planned, ids, strict=True):
                outcomes[pos] = IngestOutcome(
                    source_uri=plan.doc.loaded.source_uri,
                    status="replaced" if plan.replaces else "added",
                    document_id=doc_id,
                    title=plan.doc.loaded.title,
                    chunks=len(plan.doc.chunk_texts),
                    index_state="pending",
                )
        done = [o for o in outcomes if o is not None]
        count_ingested([(o.status, o.chunks or 0) for o in done])
        return done

    def _write_retrying(self, unit: Callable[[Session], list[int]], collection: str) -> list[int]:
        """Run the ingest transaction; a unique violation on the one-active-document-per-source index means
        another writer replaced the source between our lock and our insert (not possible under the lock,
        but a writer of an older version takes none), so the whole transaction runs again as a replacement."""
        for attempt in range(1, SOURCE_RETRIES + 1):
            try:
                with INGEST_STAGE_DURATION.labels("store").time():
                    return self.db.write(unit)
            except IntegrityError as exc:
                on_source = ACTIVE_SOURCE_INDEX in str(exc.orig) or SQLITE_SOURCE_COLUMNS in str(exc.orig)
                if on_source and attempt < SOURCE_RETRIES:
                    continue
                raise Conflict(f"a concurrent write stored the same document in {collection!r}; retry") from exc
        raise AssertionError("unreachable")

    def reembed(self, collection: str, *, batch: int = 256) -> dict[str, int]:
        """Embed again every chunk of a collection that lacks a usable embedding under its model.

        The remedy for a `dimension_mismatch` finding: an embedding of the wrong dimension is replaced, a
        missing one written, and the chunks go back through the outbox (upsert) so the index follows.
        """
        ref = self.catalog.resolve(collection)
        model, dimension = ref.embedding_model, ref.dimension
        with self.db.read() as s:
            rows = s.execute(
                select(DocumentChunk.id, DocumentChunk.content_hash, DocumentChunk.text)
                .outerjoin(
                    Embedding,
                    and_(Embedding.model == model, Embedding.content_hash == DocumentChunk.content_hash),
                )
                .where(
                    DocumentChunk.collection_id == ref.id,
                    DocumentChunk.status.in_([ChunkStatus.PENDING, ChunkStatus.INDEXED]),
                    or_(Embedding.content_hash.is_(None), Embedding.dimension != dimension),
                )
                .order_by(DocumentChunk.id)
            ).all()
        if not rows:
            return {"embedded": 0, "queued": 0}
        if model != self.embedder.model or dimension != self.embedder.dimension:
            raise InvalidInput(
                f"collection {collection!r} uses embedding model {model!r} ({dimension}-d) but this server embeds "
                f"with {self.embedder.model!r} ({self.embedder.dimension}-d): run reembed with that model configured"
            )
        texts = {h: t for _, h, t in rows}
        vectors: dict[str, bytes] = {}
        hashes = list(texts)
        for start in range(0, len(hashes), batch):
            part = hashes[start : start + batch]
            for h, vec in zip(part, self.embedder.embed([texts[h] for h in part], kind="document"), strict=True):
                vectors[h] = np.ascontiguousarray(vec, dtype="<f4").tobytes()
        chunk_ids = [int(r[0]) for r in rows]

        def unit(s: Session) -> None:
            now = utcnow()
            for part in in_batches(hashes):
                s.execute(delete(Embedding).where(Embedding.model == model, Embedding.content_hash.in_(part)))
            s.execute(
                insert(EMBEDDINGS),
                [
                    {"model": model, "content_hash": h, "dimension": dimension, "vector": v, "created_at": now}
                    for h, v in vectors.items()
                ],
            )
            queue_operation(s, ref.id, OpKind.UPSERT, chunk_ids, now=self.clock.now())

        self.db.write(unit)
        return {"embedded": len(vectors), "queued": len(chunk_ids)}

    def _vectors_to_store(
        self,
        model: str,
        dimension: int,
        plans: list[_Planned],
        collection: str,
        on_chunks: ChunkProgressFn | None = None,
    ) -> dict[str, bytes]:
        """Vectors that the `embeddings` table lacks, by content hash; embeds only what is missing."""
        wanted: dict[str, str] = {}
        given: dict[str, bytes] = {}
        for plan in plans:
            if plan.doc.vectors is not None:
                for h, vec in zip(plan.chunk_hashes, plan.doc.vectors, strict=True):
                    given.setdefault(h, np.ascontiguousarray(vec, dtype="<f4").tobytes())
            else:
                for h, text in zip(plan.chunk_hashes, plan.doc.chunk_texts, strict=True):
                    wanted.setdefault(h, text)
        known: set[str] = set()
        all_hashes = list(wanted) + list(given)
        with self.db.read() as s:
            for part in in_batches(all_hashes):
                known.update(
                    s.scalars(
                        select(Embedding.content_hash).where(Embedding.model == model, Embedding.content_hash.in_(part))
                    )
                )
        missing = {h: t for h, t in wanted.items() if h not in known}
        out = {h: v for h, v in given.items() if h not in known}
        # Chunks, not distinct texts, are what progress counts: how many chunks wait on each missing text.
        waiting = Counter(h for plan in plans if plan.doc.vectors is None for h in plan.chunk_hashes if h in missing)
        if on_chunks is not None:  # every chunk whose vector needs no embedding call: all at once
            ready = sum(len(plan.chunk_hashes) for plan in plans) - sum(waiting.values())
            if ready:
                on_chunks("embedded", ready)
        if missing:
            if model != self.embedder.model:
                raise InvalidInput(
                    f"collection {collection!r} uses embedding model {model!r} but this server embeds with "
                    f"{self.embedder.model!r}: send vectors with the chunks"
                )
            texts = list(missing.values())
            hashes = list(missing)
            parts = []
            for start in range(0, len(texts), self.embed_slice):
                check_stopping(self.stopping, collection)
                parts.append(self.embedder.embed(texts[start : start + self.embed_slice], kind="document"))
                if on_chunks is not None:
                    on_chunks("embedded", sum(waiting[h] for h in hashes[start : start + self.embed_slice]))
            vectors = np.concatenate(parts) if len(parts) > 1 else parts[0]
            if vectors.shape[1] != dimension:
                raise InvalidInput(
                    f"the embedder returned dimension {vectors.shape[1]}, the collection expects {dimension}"
                )
            for h, vec in zip(missing, vectors, strict=True):
                out[h] = np.ascontiguousarray(vec, dtype="<f4").tobytes()
        return out

    def _write(
        self,
        s: Session,
        coll_id: int,
        model: str,
        dimension: int,
        plans: list[_Planned],
        vectors: dict[str, bytes],
        lease: bool,
        lexical: tuple[AnalyzerState | None, list[list[str]]],
        collection: str,
        extra: EmbeddingRows | None = None,
    ) -> list[int]:
        state, terms = lexical
        if LexicalIndexer.read_state(s, coll_id) != state:
            raise Conflict(f"the lexical index of collection {collection!r} was re-indexed meanwhile; retry")
        now = utcnow()
        reused = {h for plan in plans for h in plan.chunk_hashes} - vectors.keys()
        if reused and (gone := removed_embeddings(s, model, reused)):
            raise ReusedEmbeddingRemoved(gone)
        insert_embeddings(s, self.db.is_sqlite, EmbeddingRows(model, dimension, vectors))
        if extra is not None:
            insert_embeddings(s, self.db.is_sqlite, extra)
        # The documents each source replaces, read inside this transaction and after the per-source lock:
        # read before it, two concurrent ingests of one source would each keep theirs active.
        by_source = active_by_source(s, coll_id, [plan.doc.loaded.source_uri for plan in plans], self.db.is_sqlite)
        for plan in plans:
            plan.replaces = by_source.get(plan.doc.loaded.source_uri, [])
        replaced = [doc_id for plan in plans for doc_id in plan.replaces]
        if replaced:
            # Hidden before the new rows go in (the partial unique index allows one active row per source);
            # their chunks and the index follow below, after the new vectors' upsert is queued.
            for part in in_batches(replaced):
                s.execute(update(DOCUMENTS).where(DOCUMENTS.c.id.in_(part)).values(status=DocumentStatus.DELETING))
        # Ids allocated up front, so each table is one executemany (db/ids.py says why).
        doc_ids = allocate_ids(s, DOCUMENTS, len(plans))
        doc_rows = [
            {
                "id": doc_id,
                "collection_id": coll_id,
                "source_uri": plan.doc.loaded.source_uri,
                "title": plan.doc.loaded.title[:1024],
                "mime_type": plan.doc.loaded.mime_type,
                "size_bytes": plan.doc.loaded.size_bytes,
                "metadata": plan.doc.loaded.metadata,
                "content_hash": plan.doc.content_hash,
                "encoding": plan.doc.loaded.encoding,
                "source_hash": plan.doc.loaded.source_hash,
                "status": DocumentStatus.ACTIVE,
                "chunk_count": len(plan.doc.chunk_texts),
                "created_at": now,
                "updated_at": now,
            }
            for doc_id, plan in zip(doc_ids, plans, strict=True)
        ]
        insert_many(s, _INSERT_DOCUMENTS, doc_rows, batch=2000)
        insert_facets(s, ((i, coll_id, plan.doc.loaded.metadata) for i, plan in zip(doc_ids, plans, strict=True)))
        chunks = [
            (doc_id, ordinal, text, h)
            for doc_id, plan in zip(doc_ids, plans, strict=True)
            for ordinal, (text, h) in enumerate(zip(plan.doc.chunk_texts, plan.chunk_hashes, strict=True))
        ]
        new_chunks = allocate_ids(s, CHUNKS, len(chunks))
        chunk_rows = [
            {
                "id": chunk_id,
                "document_id": doc_id,
                "collection_id": coll_id,
                "ordinal": ordinal,
                "text": text,
                "token_count": count_tokens(text),
                "content_hash": h,
                "vector_id": chunk_id,
                "status": ChunkStatus.PENDING,
                "created_at": now,
                "updated_at": now,
            }
            for chunk_id, (doc_id, ordinal, text, h) in zip(new_chunks, chunks, strict=True)
        ]
        insert_many(s, _INSERT_CHUNKS, chunk_rows)
        # The lexical index in the chunks' own transaction: it can never hold terms of a chunk that is not
        # stored, nor miss those of one that is.
        write_lexemes(s, lexeme_rows(coll_id, new_chunks, terms))
        # New vectors first, then the old document's removal: a replaced document never vanishes meanwhile.
        queue_operation(s, coll_id, OpKind.UPSERT, new_chunks, lease=lease, now=self.clock.now())
        if replaced:
            s.flush()
            self.catalog.mark_documents_deleting(s, coll_id, replaced)
        bump_write_version(s, coll_id)
        return doc_ids
