"""Applying one outbox operation: its effect on the vector index, then its outcome in SQL.

The effect is idempotent and reads the chunks' *current* rows, so an operation applied late, twice or out of
order can never resurrect a chunk SQL has since deleted. Phase two (`finish_operation`) marks the chunks
`indexed` and the operation `done` only while the caller still holds the lease; a failure is rescheduled
with jittered exponential backoff or dead-lettered. The outbox's state queries (counts, failing, pending,
retrying the dead) live here too: they read and write the same rows, in the same states.

Who may apply an operation is `leases.py`'s concern; which operations a replica has seen is `replica.py`'s.
"""

from __future__ import annotations

import logging
import random
from dataclasses import KW_ONLY, dataclass
from datetime import datetime, timedelta

import numpy as np
from sqlalchemy import and_, delete, func, insert, select, update
from sqlalchemy.orm import Session

from ragstore.clock import SYSTEM_CLOCK, Clock
from ragstore.db.batches import in_batches
from ragstore.db.chunk_vectors import BATCH, vectors_for_chunks
from ragstore.db.engine import Database
from ragstore.db.models import (
    ChunkStatus,
    Collection,
    CollectionStatus,
    Document,
    DocumentChunk,
    DocumentStatus,
    OpKind,
    OpState,
    SyncOperation,
)
from ragstore.db.versions import bump_write_version
from ragstore.vectors.base import CollectionSpec, VectorIndex, VectorRecord

__all__ = ["ApplyStats", "Operations", "OutboxOp", "finish_operation", "load_ops", "ops_by_id", "spec_of"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OutboxOp:
    """An operation as claimed: plain values, detached from any session."""

    id: int
    collection_id: int
    kind: str
    chunk_ids: list[int]
    attempts: int


@dataclass
class ApplyStats:
    applied: int = 0
    failed: int = 0
    dead: int = 0


def spec_of(row: Collection) -> CollectionSpec:
    return CollectionSpec(id=row.id, dimension=row.dimension, metric=row.metric)


def ops_by_id(s: Session, ids: list[int]) -> list[OutboxOp]:
    rows = s.execute(
        select(
            SyncOperation.id,
            SyncOperation.collection_id,
            SyncOperation.kind,
            SyncOperation.chunk_ids,
            SyncOperation.attempts,
        )
        .where(SyncOperation.id.in_(ids))
        .order_by(SyncOperation.id)
    ).all()
    return [OutboxOp(int(r[0]), int(r[1]), r[2], list(r[3]), int(r[4])) for r in rows]


def load_ops(db: Database, op_ids: list[int]) -> list[OutboxOp]:
    """Operations by id, in batches (a replica may have thousands to replay)."""
    ops: list[OutboxOp] = []
    for start in range(0, len(op_ids), BATCH):
        with db.read() as s:
            ops.extend(ops_by_id(s, op_ids[start : start + BATCH]))
    return ops


def finish_operation(s: Session, *, op: OutboxOp, owner: str, now: datetime) -> bool:
    """Phase two, only while `owner` still holds the lease; False if another process took it over."""
    won = s.execute(
        update(SyncOperation)
        .where(SyncOperation.id == op.id, SyncOperation.state == OpState.PENDING, SyncOperation.lease_owner == owner)
        .values(
            state=OpState.DONE,
            applied_at=now,
            attempts=op.attempts + 1,
            last_error=None,
            lease_owner=None,
            lease_expires_at=None,
        )
    )
    if not won.rowcount:  # type: ignore[attr-defined]
        log.warning("sync operation %d was taken over by another process while this one applied it", op.id)
        return False
    if op.kind == OpKind.UPSERT:
        for ids in in_batches(op.chunk_ids):
            s.execute(
                update(DocumentChunk)
                .where(
                    DocumentChunk.id.in_(ids),
                    DocumentChunk.status == ChunkStatus.PENDING,
                )
                .values(status=ChunkStatus.INDEXED, updated_at=now)
            )
    elif op.kind == OpKind.DELETE:
        doc_ids: set[int] = set()
        for part in in_batches(op.chunk_ids):
            doc_ids.update(s.scalars(select(DocumentChunk.document_id).where(DocumentChunk.id.in_(part))))
            s.execute(
                delete(DocumentChunk).where(DocumentChunk.id.in_(part), DocumentChunk.status == ChunkStatus.DELETING)
            )
        if doc_ids:
            # A document leaves once its last chunk has left the index.
            remaining = select(DocumentChunk.id).where(DocumentChunk.document_id == Document.id).exists()
            for part in in_batches(sorted(doc_ids)):  # a replacing bulk ingest retires thousands at once
                retired = and_(Document.id.in_(part), Document.status == DocumentStatus.DELETING, ~remaining)
                s.execute(delete(Document).where(retired))
    elif op.kind == OpKind.DROP_COLLECTION:
        s.execute(
            delete(Collection).where(Collection.id == op.collection_id, Collection.status == CollectionStatus.DELETING)
        )
    if op.kind != OpKind.DROP_COLLECTION:
        bump_write_version(s, op.collection_id)  # what searches may return changed: cached results are stale
    return True


@dataclass
class Operations:
    """Effects of operations on one process's index, and the outbox rows that record their outcome.

    `collections` is the set of collections this process's replica holds, shared with the replica: an
    effect that creates or drops a collection in the index updates it.
    """

    db: Database
    index: VectorIndex
    collections: set[int]
    _: KW_ONLY
    max_attempts: int = 8
    backoff_base_s: float = 0.5
    backoff_max_s: float = 300.0
    clock: Clock = SYSTEM_CLOCK

    def effect(self, op: OutboxOp, *, replay: bool) -> None:
        """Make the index reflect `op`. Idempotent; reads current SQL state for upserts."""
        if op.kind == OpKind.UPSERT:
            with self.db.read() as s:
                coll = s.get(Collection, op.collection_id)
                if coll is None:
                    return
                self.index.ensure_collection(spec_of(coll))
                self.collections.add(coll.id)
                wanted = ChunkStatus.INDEXED if replay else None
                ids, vectors = self._vectors_for(s, coll, op.chunk_ids, wanted)
                records = self.records(ids, s)
            self.index.upsert(op.collection_id, ids, vectors, records)
        elif op.kind == OpKind.DELETE:
            self.index.delete(op.collection_id, np.asarray(op.chunk_ids, dtype=np.int64))
        elif op.kind == OpKind.DROP_COLLECTION:
            self.index.drop_collection(op.collection_id)
            self.collections.discard(op.collection_id)
        else:
            raise ValueError(f"unknown sync operation kind {op.kind!r}")

    def records(self, ids: np.ndarray, session: Session | None = None) -> list[VectorRecord] | None:
        """Document id, content hash and metadata per chunk, in the order of `ids`, for backends that keep them."""
        if not self.index.wants_records or not len(ids):
            return None

        def read(s: Session) -> list[VectorRecord]:
            found: dict[int, VectorRecord] = {}
            wanted = [int(i) for i in ids.tolist()]
            for start in range(0, len(wanted), BATCH):
                rows = s.execute(
                    select(DocumentChunk.id, DocumentChunk.document_id, DocumentChunk.content_hash, Document.metadata_)
                    .join(Document, Document.id == DocumentChunk.document_id)
                    .where(DocumentChunk.id.in_(wanted[start : start + BATCH]))
                )
                for cid, did, chash, meta in rows:
                    found[int(cid)] = VectorRecord(int(did), chash, dict(meta or {}))
            return [found.get(i, VectorRecord(0, "")) for i in wanted]

        if session is not None:
            return read(session)
        with self.db.read() as s:
            return read(s)

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
        return vectors_for_chunks(s, coll.embedding_model, coll.dimension, chunks)

    def record_failure(self, op: OutboxOp, exc: Exception, owner: str) -> bool:
        """Release the lease and schedule a retry after a jittered backoff (by the clock); True if dead-lettered."""
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
                .where(SyncOperation.id == op.id, SyncOperation.lease_owner == owner)
                .values(
                    attempts=attempts,
                    last_error=f"{type(exc).__name__}: {exc}"[:2000],
                    state=OpState.DEAD if dead else OpState.PENDING,
                    next_attempt_at=self.clock.now() + timedelta(seconds=delay),
                    lease_owner=None,
                    lease_expires_at=None,
                )
            )

        self.db.write(unit)
        return dead

    # -- the outbox's state ----------------------------------------------------------------------------------
    def counts(self) -> dict[str, int]:
        """Outbox operations by state (pending, done, dead), zeros included."""
        with self.db.read() as s:
            rows = s.execute(select(SyncOperation.state, func.count()).group_by(SyncOperation.state)).all()
        counts = {OpState.PENDING: 0, OpState.DEAD: 0, OpState.DONE: 0}
        counts.update({state: int(n) for state, n in rows})
        return counts

    def failing(self) -> tuple[int, str | None]:
        """Pending operations that have failed at least once (waiting to retry), and the newest error."""
        with self.db.read() as s:
            n = s.scalar(select(func.count()).where(SyncOperation.state == OpState.PENDING, SyncOperation.attempts > 0))
            last = s.scalar(
                select(SyncOperation.last_error)
                .where(SyncOperation.state == OpState.PENDING, SyncOperation.attempts > 0)
                .order_by(SyncOperation.updated_at.desc())
                .limit(1)
            )
        return int(n or 0), last

    def has_pending(self) -> bool:
        """Whether any operation still waits to be applied (one indexed lookup, not a count)."""
        with self.db.read() as s:
            return s.scalar(select(SyncOperation.id).where(SyncOperation.state == OpState.PENDING).limit(1)) is not None

    def retry_dead(self) -> int:
        """Queue dead-lettered operations again (after the cause has been fixed).

        Each is re-queued as a *new* operation: replicas have moved their watermark past the dead one, and
        only an id above every watermark reaches all of them.
        """

        def unit(s: Session) -> int:
            now = self.clock.now()
            dead = s.execute(
                select(SyncOperation.id, SyncOperation.collection_id, SyncOperation.kind, SyncOperation.chunk_ids)
                .where(SyncOperation.state == OpState.DEAD)
                .order_by(SyncOperation.id)
            ).all()
            if not dead:
                return 0
            s.execute(
                insert(SyncOperation),
                [
                    {
                        "collection_id": cid,
                        "kind": kind,
                        "chunk_ids": chunk_ids,
                        "state": OpState.PENDING,
                        "next_attempt_at": now,  # due at once, by this outbox's clock
                    }
                    for _, cid, kind, chunk_ids in dead
                ],
            )
            s.execute(delete(SyncOperation).where(SyncOperation.id.in_([int(r[0]) for r in dead])))
            return len(dead)

        return self.db.write(unit)
