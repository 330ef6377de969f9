"""Applies the outbox to the vector index: the second half of every two-phase write.

Phase one (done by the writer) committed rows in state `pending` and a `sync_operations` row. Here the
operation reaches the index (idempotently), and only then does a second transaction mark the chunks
`indexed` and the operation `done`. Upserts read the chunks' *current* rows, so an operation applied late,
twice or out of order can never resurrect a chunk that SQL has since deleted: operations commute, which
is what lets several processes apply them in parallel.

Any number of processes apply the outbox. Each claims pending operations with a lease (`FOR UPDATE SKIP
LOCKED` on PostgreSQL; SQLite's `BEGIN IMMEDIATE` serialises the claim), so no two apply the same one at
once, and a dead process's lease lapses so that another takes over.

Every process also holds a *replica* of the index (for the embedded and memory backends, which live in
one process). A replica follows the outbox as a log: its `watermark` is the highest id below which every
operation is finished and reflected in it. It replays operations that other processes finished, and a
pending operation holds the watermark back (not the replay of later ones). Durable indexes save the
watermark with their files (`applied_seq`); on open, everything after it is replayed. Finished operations
are pruned once this process holds them durably and they are older than the retention period (time for
replicas elsewhere to replay them); a replica that finds itself behind the pruned point rebuilds from SQL.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any

import numpy as np
from sqlalchemy import Select, and_, delete, func, insert, or_, select, update
from sqlalchemy.orm import Session

from ragstore.db.chunk_vectors import BATCH, iter_indexed_vectors, vectors_for_chunks
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
    SyncMarker,
    SyncOperation,
    utcnow,
)
from ragstore.db.versions import bump_write_version
from ragstore.errors import Unavailable
from ragstore.sync.outbox import owner_is_dead_here, process_owner
from ragstore.vectors.base import CollectionSpec, VectorIndex, VectorRecord

__all__ = ["OutboxApplier", "RecoveryReport"]

log = logging.getLogger(__name__)
Progress = Callable[[int, int], None]


@dataclass
class RecoveryReport:
    rebuilt_collections: list[int] = field(default_factory=list)
    replayed_operations: int = 0
    applied_pending: int = 0
    # Collections whose lexical terms were rebuilt at open (a new analyzer, or built for the first time).
    relexed_collections: list[int] = field(default_factory=list)
    # Set when a shared vector store could not be reached at open: the store serves, degraded.
    index_unavailable: str | None = None


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


def _spec(row: Collection) -> CollectionSpec:
    return CollectionSpec(id=row.id, dimension=row.dimension, metric=row.metric)


SCAN = 1000
PRUNED_THROUGH = "outbox_pruned_through"


def _ops_by_id(s: Session, ids: list[int]) -> list[OutboxOp]:
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


class OutboxApplier:
    def __init__(
        self,
        db: Database,
        index: VectorIndex,
        *,
        max_attempts: int = 8,
        backoff_base_s: float = 0.5,
        backoff_max_s: float = 300.0,
        lease_s: float = 60.0,
        retain_s: float = 3600.0,
    ) -> None:
        self.db = db
        self.index = index
        self.max_attempts = max_attempts
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.lease_s = lease_s
        self.retain_s = retain_s
        # One applier at a time per process: the replica sees operations in a single order.
        self.lock = threading.RLock()
        self.watermark = 0
        self._reflected_above: set[int] = set()  # finished operations above the watermark this replica holds
        self._collections: set[int] = set()
        self.applications = 0  # operations this process applied as their claimer (not replays)
        self.replays = 0
        # Told which collections an apply changed, after its commit (for cache invalidation and announcements).
        self.on_finished: Callable[[set[int]], None] | None = None

    @property
    def owner(self) -> str:
        return process_owner()

    # -- open / recovery ---------------------------------------------------------------------------------
    def recover(self, progress: Progress | None = None) -> RecoveryReport:
        """Bring this replica level with SQL: rebuild what is unknown or pruned away, replay what follows."""
        report = RecoveryReport()
        self.release_dead_leases()
        with self.lock:
            with self.db.read() as s:
                collections = list(s.scalars(select(Collection).order_by(Collection.id)))
            pruned = self.pruned_through()
            positions = []
            try:
                for row in collections:
                    positions.append(self._recover_collection(row, pruned, report, progress))
            except Unavailable as exc:
                if not self.index.shared:
                    raise
                # The store opens degraded: writes are kept (their chunks pending) and applied when the
                # shared vector store answers again; health reports the operations waiting on it.
                log.warning("the vector store is unavailable at open (%s); writes wait in the outbox", exc)
                report.index_unavailable = exc.message
            self.watermark = min(positions) if positions and not self.index.shared else pruned
            self._reflected_above.clear()
            report.replayed_operations = self.advance()
            report.applied_pending = self.apply_pending(ignore_schedule=True).applied
            if report.index_unavailable is None:
                self.index.persist()
        return report

    def _recover_collection(
        self, row: Collection, pruned: int, report: RecoveryReport, progress: Progress | None
    ) -> int:
        """Open one collection in the index, rebuilding it if the index cannot be trusted; its position."""
        self.index.ensure_collection(_spec(row))
        self._collections.add(row.id)
        seq = self.index.applied_seq(row.id)
        if self.index.shared:
            # Every finished operation reached the shared store before it was marked done: only a store
            # that lost the collection altogether (a new, empty one) is rebuilt here; any other gap is the
            # consistency checker's to find and repair.
            stale = self.index.count(row.id) == 0 and self._has_indexed_chunks(row.id)
        else:
            stale = seq < pruned or not self.index.is_durable()
            stale = stale or (seq == 0 and self._has_indexed_chunks(row.id))
        if stale:
            self.rebuild(row.id, progress=progress)
            report.rebuilt_collections.append(row.id)
        return self.index.applied_seq(row.id)

    def _has_indexed_chunks(self, collection_id: int) -> bool:
        with self.db.read() as s:
            found = s.scalar(
                select(DocumentChunk.id)
                .where(DocumentChunk.collection_id == collection_id, DocumentChunk.status == ChunkStatus.INDEXED)
                .limit(1)
            )
        return found is not None

    def pruned_through(self) -> int:
        with self.db.read() as s:
            return int(s.scalar(select(SyncMarker.value).where(SyncMarker.name == PRUNED_THROUGH)) or 0)

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
                # Position after the rebuild: every operation before the first unfinished one is reflected.
                unfinished = s.scalar(select(func.min(SyncOperation.id)).where(SyncOperation.state == OpState.PENDING))
                newest = s.scalar(select(func.max(SyncOperation.id))) or 0
                position = int(unfinished) - 1 if unfinished is not None else int(newest)
            self.index.drop_collection(collection_id)
            self.index.ensure_collection(spec)
            self._collections.add(collection_id)
            done = 0
            for batch in iter_indexed_vectors(self.db, collection_id, model, spec.dimension, batch_size=batch_size):
                self.index.upsert(collection_id, batch.ids, batch.vectors, self.records(batch.ids))
                done += len(batch.ids)
                if progress:
                    progress(done, total)
            if progress and total == 0:
                progress(0, 0)
            self.index.mark_applied(collection_id, max(position, 1))
            self.index.persist()
            return done

    # -- following the log -----------------------------------------------------------------------------------
    def advance(self) -> int:
        """Replay what other processes finished since the watermark, then move the watermark; returns replays.

        One indexed range read when nothing is new, so followers can call it on every poll.
        """
        with self.lock:
            if self.watermark < self.pruned_through():
                if self.index.shared:
                    self.watermark = self.pruned_through()  # the shared store already holds their effects
                else:
                    self._catch_up_by_rebuild()
            replayed = 0
            cursor = self.watermark
            blocked = False
            while True:
                with self.db.read() as s:
                    rows = s.execute(
                        select(SyncOperation.id, SyncOperation.state)
                        .where(SyncOperation.id > cursor)
                        .order_by(SyncOperation.id)
                        .limit(SCAN)
                    ).all()
                # A shared store already holds what another process applied: nothing to replay.
                todo = (
                    []
                    if self.index.shared
                    else [int(i) for i, state in rows if state == OpState.DONE and i not in self._reflected_above]
                )
                for op in self._load(todo):
                    self._effect(op, replay=True)
                    self._reflected_above.add(op.id)
                    self.replays += 1
                    replayed += 1
                for op_id, state in rows:
                    if state == OpState.PENDING:
                        blocked = True
                    elif not blocked:
                        self.watermark = int(op_id)
                        self._reflected_above.discard(int(op_id))
                if len(rows) < SCAN:
                    break
                cursor = int(rows[-1][0])
            for cid in self._collections:
                self.index.mark_applied(cid, self.watermark)
            if replayed:
                log.debug("replayed %d operations; watermark %d", replayed, self.watermark)
            return replayed

    def _catch_up_by_rebuild(self) -> None:
        log.warning(
            "this replica is at operation %d, but operations up to %d were pruned: rebuilding from the database",
            self.watermark,
            self.pruned_through(),
        )
        with self.db.read() as s:
            ids = list(s.scalars(select(Collection.id).where(Collection.status == CollectionStatus.ACTIVE)))
        for cid in set(self._collections) - set(ids):
            self.index.drop_collection(cid)
            self._collections.discard(cid)
        for cid in ids:
            self.rebuild(cid)
        self.watermark = min((self.index.applied_seq(c) for c in ids), default=self.pruned_through())
        self._reflected_above.clear()

    def _load(self, op_ids: list[int]) -> list[OutboxOp]:
        ops: list[OutboxOp] = []
        for start in range(0, len(op_ids), BATCH):
            with self.db.read() as s:
                ops.extend(_ops_by_id(s, op_ids[start : start + BATCH]))
        return ops

    # -- applying ------------------------------------------------------------------------------------------
    def claim(self, *, ignore_schedule: bool = False, limit: int = 1000) -> list[OutboxOp]:
        """Lease due pending operations: unclaimed ones, lapsed leases, and this process's own writes."""
        owner, lease_s = self.owner, self.lease_s

        def claimable(now: datetime) -> Select[Any]:
            free = or_(
                SyncOperation.lease_owner.is_(None),
                SyncOperation.lease_owner == owner,
                SyncOperation.lease_expires_at < now,
            )
            query = select(SyncOperation.id).where(SyncOperation.state == OpState.PENDING, free)
            if not ignore_schedule:
                query = query.where(SyncOperation.next_attempt_at <= now)
            return query

        # A read first: most polls find nothing, and a claim is a write transaction (on SQLite, the lock).
        with self.db.read() as s:
            if s.scalar(claimable(utcnow()).limit(1)) is None:
                return []

        def unit(s: Session) -> list[OutboxOp]:
            now = utcnow()
            query = claimable(now).order_by(SyncOperation.id).limit(limit)
            if not self.db.is_sqlite:
                query = query.with_for_update(skip_locked=True)
            ids = [int(i) for i in s.scalars(query)]
            if not ids:
                return []
            s.execute(
                update(SyncOperation)
                .where(SyncOperation.id.in_(ids))
                .values(lease_owner=owner, lease_expires_at=now + timedelta(seconds=lease_s))
            )
            return _ops_by_id(s, ids)

        return self.db.write(unit)

    def release_dead_leases(self) -> int:
        """Release leases held by processes of this host that have died (others wait for expiry)."""
        with self.db.read() as s:
            owners = set(
                s.scalars(
                    select(SyncOperation.lease_owner)
                    .where(SyncOperation.state == OpState.PENDING, SyncOperation.lease_owner.is_not(None))
                    .distinct()
                )
            )
        dead = [o for o in owners if o is not None and owner_is_dead_here(o)]
        if not dead:
            return 0

        def unit(s: Session) -> int:
            result = s.execute(
                update(SyncOperation)
                .where(SyncOperation.state == OpState.PENDING, SyncOperation.lease_owner.in_(dead))
                .values(lease_owner=None, lease_expires_at=None)
            )
            return int(result.rowcount or 0)  # type: ignore[attr-defined]

        released = self.db.write(unit)
        log.info("released %d outbox leases of dead processes %s", released, dead)
        return released

    def apply_pending(self, *, ignore_schedule: bool = False, limit: int = 1000) -> ApplyStats:
        """Claim and apply due operations in id order; failures are rescheduled with backoff or dead-lettered."""
        stats = ApplyStats()
        changed: set[int] = set()
        with self.lock:
            for op in self.claim(ignore_schedule=ignore_schedule, limit=limit):
                log.debug("applying sync operation %d (%s) as %s", op.id, op.kind, self.owner)
                try:
                    self._effect(op, replay=False)
                except Exception as exc:
                    dead = self._record_failure(op, exc)
                    stats.failed += 1
                    stats.dead += int(dead)
                    continue
                if self.db.write(partial(self._finish, op=op, owner=self.owner)):
                    self.applications += 1
                    changed.add(op.collection_id)
                    log.debug("applied sync operation %d (%s) as %s", op.id, op.kind, self.owner)
                self._reflected_above.add(op.id)
                self._collections.add(op.collection_id)
                stats.applied += 1
            self.advance()
        if changed and self.on_finished is not None:
            self.on_finished(changed)
        return stats

    def _effect(self, op: OutboxOp, *, replay: bool) -> None:
        """Make the index reflect `op`. Idempotent; reads current SQL state for upserts."""
        if op.kind == OpKind.UPSERT:
            with self.db.read() as s:
                coll = s.get(Collection, op.collection_id)
                if coll is None:
                    return
                self.index.ensure_collection(_spec(coll))
                self._collections.add(coll.id)
                wanted = ChunkStatus.INDEXED if replay else None
                ids, vectors = self._vectors_for(s, coll, op.chunk_ids, wanted)
                records = self.records(ids, s)
            self.index.upsert(op.collection_id, ids, vectors, records)
        elif op.kind == OpKind.DELETE:
            self.index.delete(op.collection_id, np.asarray(op.chunk_ids, dtype=np.int64))
        elif op.kind == OpKind.DROP_COLLECTION:
            self.index.drop_collection(op.collection_id)
            self._collections.discard(op.collection_id)
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

    @staticmethod
    def _finish(s: Session, *, op: OutboxOp, owner: str) -> bool:
        """Phase two, only while this process still holds the lease; False if another process took it over."""
        won = s.execute(
            update(SyncOperation)
            .where(
                SyncOperation.id == op.id, SyncOperation.state == OpState.PENDING, SyncOperation.lease_owner == owner
            )
            .values(
                state=OpState.DONE,
                applied_at=utcnow(),
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
                s.execute(
                    delete(Document).where(
                        Document.id.in_(doc_ids), Document.status == DocumentStatus.DELETING, ~remaining
                    )
                )
        elif op.kind == OpKind.DROP_COLLECTION:
            s.execute(
                delete(Collection).where(
                    Collection.id == op.collection_id, Collection.status == CollectionStatus.DELETING
                )
            )
        if op.kind != OpKind.DROP_COLLECTION:
            bump_write_version(s, op.collection_id)  # what searches may return changed: cached results are stale
        return True

    def _record_failure(self, op: OutboxOp, exc: Exception) -> bool:
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
        owner = self.owner

        def unit(s: Session) -> None:
            s.execute(
                update(SyncOperation)
                .where(SyncOperation.id == op.id, SyncOperation.lease_owner == owner)
                .values(
                    attempts=attempts,
                    last_error=f"{type(exc).__name__}: {exc}"[:2000],
                    state=OpState.DEAD if dead else OpState.PENDING,
                    next_attempt_at=utcnow() + timedelta(seconds=delay),
                    lease_owner=None,
                    lease_expires_at=None,
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
                    {"collection_id": cid, "kind": kind, "chunk_ids": chunk_ids, "state": OpState.PENDING}
                    for _, cid, kind, chunk_ids in dead
                ],
            )
            s.execute(delete(SyncOperation).where(SyncOperation.id.in_([int(r[0]) for r in dead])))
            return len(dead)

        return self.db.write(unit)

    def prune_done(self, keep_last: int = 1000) -> int:
        """Delete finished operations that every replica is past, keeping a short tail for inspection.

        This replica must hold them durably (its saved position), and other replicas get `retain_s` to
        replay them; one that falls further behind rebuilds when it sees `outbox_pruned_through`.
        """
        with self.lock:
            saved = (
                min((self.index.applied_seq(c) for c in self._collections), default=self.watermark)
                if self.index.is_durable() and not self.index.shared
                else self.watermark
            )
            upto = min(saved, self.watermark) - keep_last
        if upto <= 0:
            return 0
        cutoff = utcnow() - timedelta(seconds=self.retain_s)

        def unit(s: Session) -> int:
            finished = and_(
                SyncOperation.id <= upto,
                SyncOperation.state == OpState.DONE,
                SyncOperation.applied_at < cutoff,
            )
            through = s.scalar(select(func.max(SyncOperation.id)).where(finished))
            if through is None:
                return 0
            result = s.execute(delete(SyncOperation).where(finished))
            marker = s.get(SyncMarker, PRUNED_THROUGH)
            if marker is None:
                s.add(SyncMarker(name=PRUNED_THROUGH, value=int(through)))
            elif marker.value < through:
                marker.value = int(through)
            return int(result.rowcount or 0)  # type: ignore[attr-defined]

        return self.db.write(unit)
