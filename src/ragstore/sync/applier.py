"""Applies the outbox to the vector index: the second half of every two-phase write.

Phase one (done by the writer) committed rows in state `pending` and a `sync_operations` row. Here the
operation reaches the index (idempotently), and only then does a second transaction mark the chunks
`indexed` and the operation `done`. Upserts read the chunks' *current* rows, so an operation applied late,
twice or out of order can never resurrect a chunk that SQL has since deleted.

Durable indexes record the highest operation they contain (`applied_seq`); on open, every operation after
it is replayed, which repairs an index file that was not saved before a crash.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial

import numpy as np
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from ragstore.db.engine import Database
from ragstore.db.models import (
    ChunkStatus,
    Collection,
    Document,
    DocumentChunk,
    Embedding,
    OpKind,
    OpState,
    SyncOperation,
    utcnow,
)
from ragstore.vectors.base import CollectionSpec, VectorIndex

__all__ = ["OutboxApplier", "RecoveryReport"]

log = logging.getLogger(__name__)
Progress = Callable[[int, int], None]


@dataclass
class RecoveryReport:
    rebuilt_collections: list[int] = field(default_factory=list)
    replayed_operations: int = 0
    applied_pending: int = 0


@dataclass
class ApplyStats:
    applied: int = 0
    failed: int = 0
    dead: int = 0


def _spec(row: Collection) -> CollectionSpec:
    return CollectionSpec(id=row.id, dimension=row.dimension, metric=row.metric)


BATCH = 5000


def _with_vectors(
    s: Session, model: str, dimension: int, chunks: list[tuple[int, str]]
) -> tuple[np.ndarray, np.ndarray]:
    """(ids, vectors) for chunks given as (id, content hash), read from the `embeddings` table.

    Two indexed lookups, not a join: with a long id list SQLite's planner turns the join around and walks
    every embedding of the model, which made each apply cost O(all embeddings).
    """
    by_hash: dict[str, bytes] = {}
    hashes = list({h for _, h in chunks})
    for start in range(0, len(hashes), BATCH):
        rows = s.execute(
            select(Embedding.content_hash, Embedding.vector).where(
                Embedding.model == model, Embedding.content_hash.in_(hashes[start : start + BATCH])
            )
        )
        by_hash.update((h, v) for h, v in rows)
    present = [(i, by_hash[h]) for i, h in chunks if h in by_hash]
    ids = np.fromiter((i for i, _ in present), dtype=np.int64, count=len(present))
    vectors = np.frombuffer(b"".join(v for _, v in present), dtype="<f4").reshape(len(present), dimension)
    return ids, vectors


class OutboxApplier:
    def __init__(
        self,
        db: Database,
        index: VectorIndex,
        *,
        max_attempts: int = 8,
        backoff_base_s: float = 0.5,
        backoff_max_s: float = 300.0,
    ) -> None:
        self.db = db
        self.index = index
        self.max_attempts = max_attempts
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        # One applier at a time per process: the index sees operations in a single order.
        self.lock = threading.RLock()

    # -- open / recovery ---------------------------------------------------------------------------------
    def recover(self, progress: Progress | None = None) -> RecoveryReport:
        """Bring the index level with SQL: rebuild what is unknown, replay what is after its sequence."""
        report = RecoveryReport()
        with self.lock:
            with self.db.read() as s:
                collections = list(s.scalars(select(Collection).order_by(Collection.id)))
            for row in collections:
                self.index.ensure_collection(_spec(row))
                if not self.index.is_durable() or self.index.applied_seq(row.id) == 0:
                    if self._has_indexed_chunks(row.id) or not self.index.is_durable():
                        self.rebuild(row.id, progress=progress)
                        report.rebuilt_collections.append(row.id)
                    continue
                report.replayed_operations += self._replay_done_after(row.id, self.index.applied_seq(row.id))
            report.applied_pending = self.apply_pending(ignore_schedule=True).applied
            self.index.persist()
        return report

    def _has_indexed_chunks(self, collection_id: int) -> bool:
        with self.db.read() as s:
            found = s.scalar(
                select(DocumentChunk.id)
                .where(DocumentChunk.collection_id == collection_id, DocumentChunk.status == ChunkStatus.INDEXED)
                .limit(1)
            )
        return found is not None

    def _replay_done_after(self, collection_id: int, seq: int) -> int:
        with self.db.read() as s:
            ops = list(
                s.scalars(
                    select(SyncOperation)
                    .where(
                        SyncOperation.collection_id == collection_id,
                        SyncOperation.id > seq,
                        SyncOperation.state == OpState.DONE,
                    )
                    .order_by(SyncOperation.id)
                )
            )
        for op in ops:
            self._effect(op, replay=True)
            self.index.mark_applied(collection_id, op.id)
        if ops:
            log.info("replayed %d outbox operations into collection %d after sequence %d", len(ops), collection_id, seq)
        return len(ops)

    def rebuild(self, collection_id: int, progress: Progress | None = None, batch_size: int = 5000) -> int:
        """Recreate a collection's index from the chunks SQL holds as indexed and their stored embeddings."""
        with self.lock:
            with self.db.read() as s:
                row = s.get(Collection, collection_id)
                if row is None:
                    self.index.drop_collection(collection_id)
                    return 0
                spec, model = _spec(row), row.embedding_model
                total = (
                    s.scalar(
                        select(func.count())
                        .select_from(DocumentChunk)
                        .where(
                            DocumentChunk.collection_id == collection_id, DocumentChunk.status == ChunkStatus.INDEXED
                        )
                    )
                    or 0
                )
                last_done = (
                    s.scalar(
                        select(func.max(SyncOperation.id)).where(
                            SyncOperation.collection_id == collection_id, SyncOperation.state == OpState.DONE
                        )
                    )
                    or 0
                )
            self.index.drop_collection(collection_id)
            self.index.ensure_collection(spec)
            done = 0
            for ids, vectors in self._indexed_vectors(collection_id, model, spec.dimension, batch_size):
                self.index.upsert(collection_id, ids, vectors)
                done += len(ids)
                if progress:
                    progress(done, total)
            if progress and total == 0:
                progress(0, 0)
            self.index.mark_applied(collection_id, max(last_done, 1))
            self.index.persist()
            return done

    def _indexed_vectors(
        self, collection_id: int, model: str, dimension: int, batch_size: int
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        after = 0
        while True:
            with self.db.read() as s:
                chunks = s.execute(
                    select(DocumentChunk.id, DocumentChunk.content_hash)
                    .where(
                        DocumentChunk.collection_id == collection_id,
                        DocumentChunk.status == ChunkStatus.INDEXED,
                        DocumentChunk.id > after,
                    )
                    .order_by(DocumentChunk.id)
                    .limit(batch_size)
                ).all()
                if not chunks:
                    return
                ids, vectors = _with_vectors(s, model, dimension, [(int(c[0]), c[1]) for c in chunks])
            yield ids, vectors
            after = int(chunks[-1][0])

    # -- applying ------------------------------------------------------------------------------------------
    def apply_pending(self, *, ignore_schedule: bool = False, limit: int = 1000) -> ApplyStats:
        """Apply due pending operations in id order; failures are rescheduled with backoff or dead-lettered."""
        stats = ApplyStats()
        with self.lock:
            with self.db.read() as s:
                query = select(SyncOperation).where(SyncOperation.state == OpState.PENDING)
                if not ignore_schedule:
                    query = query.where(SyncOperation.next_attempt_at <= utcnow())
                ops = list(s.scalars(query.order_by(SyncOperation.id).limit(limit)))
            for op in ops:
                try:
                    self._effect(op, replay=False)
                except Exception as exc:
                    dead = self._record_failure(op, exc)
                    stats.failed += 1
                    stats.dead += int(dead)
                    continue
                self.db.write(partial(self._finish, op=op))
                self.index.mark_applied(op.collection_id, op.id)
                stats.applied += 1
        return stats

    def _effect(self, op: SyncOperation, *, replay: bool) -> None:
        """Make the index reflect `op`. Idempotent; reads current SQL state for upserts."""
        if op.kind == OpKind.UPSERT:
            with self.db.read() as s:
                coll = s.get(Collection, op.collection_id)
                if coll is None:
                    return
                self.index.ensure_collection(_spec(coll))
                wanted = ChunkStatus.INDEXED if replay else None
                ids, vectors = self._vectors_for(s, coll, op.chunk_ids, wanted)
            self.index.upsert(op.collection_id, ids, vectors)
        elif op.kind == OpKind.DELETE:
            self.index.delete(op.collection_id, np.asarray(op.chunk_ids, dtype=np.int64))
        elif op.kind == OpKind.DROP_COLLECTION:
            self.index.drop_collection(op.collection_id)
        else:
            raise ValueError(f"unknown sync operation kind {op.kind!r}")

    @staticmethod
    def _vectors_for(
        s: Session, coll: Collection, chunk_ids: list[int], status: str | None
    ) -> tuple[np.ndarray, np.ndarray]:
        statuses = [status] if status else [ChunkStatus.PENDING, ChunkStatus.INDEXED]
        chunks: list[tuple[int, str]] = []
        for start in range(0, len(chunk_ids), BATCH):
            chunks.extend(
                (int(i), h)
                for i, h in s.execute(
                    select(DocumentChunk.id, DocumentChunk.content_hash).where(
                        DocumentChunk.id.in_(chunk_ids[start : start + BATCH]), DocumentChunk.status.in_(statuses)
                    )
                )
            )
        return _with_vectors(s, coll.embedding_model, coll.dimension, chunks)

    @staticmethod
    def _finish(s: Session, *, op: SyncOperation) -> None:
        if op.kind == OpKind.UPSERT:
            for start in range(0, len(op.chunk_ids), 10_000):
                s.execute(
                    update(DocumentChunk)
                    .where(
                        DocumentChunk.id.in_(op.chunk_ids[start : start + 10_000]),
                        DocumentChunk.status == ChunkStatus.PENDING,
                    )
                    .values(status=ChunkStatus.INDEXED, updated_at=utcnow())
                )
        elif op.kind == OpKind.DELETE:
            doc_ids: set[int] = set()
            for start in range(0, len(op.chunk_ids), 10_000):
                part = op.chunk_ids[start : start + 10_000]
                doc_ids.update(s.scalars(select(DocumentChunk.document_id).where(DocumentChunk.id.in_(part))))
                s.execute(
                    delete(DocumentChunk).where(
                        DocumentChunk.id.in_(part), DocumentChunk.status == ChunkStatus.DELETING
                    )
                )
            if doc_ids:
                # A document leaves once its last chunk has left the index.
                remaining = select(DocumentChunk.id).where(DocumentChunk.document_id == Document.id).exists()
                s.execute(delete(Document).where(Document.id.in_(doc_ids), Document.status == "deleting", ~remaining))
        elif op.kind == OpKind.DROP_COLLECTION:
            s.execute(delete(Collection).where(Collection.id == op.collection_id, Collection.status == "deleting"))
        s.execute(
            update(SyncOperation)
            .where(SyncOperation.id == op.id)
            .values(state=OpState.DONE, applied_at=utcnow(), attempts=op.attempts + 1, last_error=None)
        )

    def _record_failure(self, op: SyncOperation, exc: Exception) -> bool:
        attempts = op.attempts + 1
        dead = attempts >= self.max_attempts
        delay = min(self.backoff_max_s, self.backoff_base_s * 2 ** (attempts - 1)) * (0.5 + random.random() / 2)
        log.warning(
            "sync operation %d (%s) failed on attempt %d%s: %s",
            op.id,
            op.kind,
            attempts,
            "; dead-lettered" if dead else f"; retrying in {delay:.1f}s",
            exc,
        )

        def unit(s: Session) -> None:
            s.execute(
                update(SyncOperation)
                .where(SyncOperation.id == op.id)
                .values(
                    attempts=attempts,
                    last_error=f"{type(exc).__name__}: {exc}"[:2000],
                    state=OpState.DEAD if dead else OpState.PENDING,
                    next_attempt_at=utcnow() + timedelta(seconds=delay),
                )
            )

        self.db.write(unit)
        return dead

    def counts(self) -> dict[str, int]:
        """Outbox operations by state (pending, done, dead), zeros included."""
        with self.db.read() as s:
            rows = s.execute(select(SyncOperation.state, func.count()).group_by(SyncOperation.state)).all()
        counts = {OpState.PENDING: 0, OpState.DEAD: 0, OpState.DONE: 0}
        counts.update({state: int(n) for state, n in rows})
        return counts

    def has_pending(self) -> bool:
        """Whether any operation still waits to be applied (one indexed lookup, not a count)."""
        with self.db.read() as s:
            return s.scalar(select(SyncOperation.id).where(SyncOperation.state == OpState.PENDING).limit(1)) is not None

    def retry_dead(self) -> int:
        """Put dead-lettered operations back in the queue (after the cause has been fixed)."""

        def unit(s: Session) -> int:
            result = s.execute(
                update(SyncOperation)
                .where(SyncOperation.state == OpState.DEAD)
                .values(state=OpState.PENDING, attempts=0, next_attempt_at=utcnow())
            )
            return int(result.rowcount or 0)  # type: ignore[attr-defined]

        return self.db.write(unit)

    def prune_done(self, keep_last: int = 1000) -> int:
        """Delete done operations the index holds durably, keeping a short tail for inspection."""
        if not self.index.is_durable():
            return 0
        removed = 0
        with self.db.read() as s:
            collection_ids = list(s.scalars(select(SyncOperation.collection_id).distinct()))
        for cid in collection_ids:
            upto = self.index.applied_seq(cid) - keep_last
            if upto <= 0:
                continue

            def unit(s: Session, cid: int = cid, upto: int = upto) -> int:
                result = s.execute(
                    delete(SyncOperation).where(
                        SyncOperation.collection_id == cid,
                        SyncOperation.state == OpState.DONE,
                        SyncOperation.id <= upto,
                    )
                )
                return int(result.rowcount or 0)  # type: ignore[attr-defined]

            removed += self.db.write(unit)
        return removed
