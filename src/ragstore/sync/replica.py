"""This process's replica of the vector index, kept level with the outbox it follows as a log.

Every process holds a *replica* of the index (for the embedded and memory backends, which live in one
process). Its `watermark` is the highest operation id below which every operation is finished and reflected
in it. It replays operations that other processes finished, and a pending operation holds the watermark
back (not the replay of later ones). Durable indexes save the watermark with their files (`applied_seq`);
on open, everything after it is replayed. Finished operations are pruned once this process holds them
durably and they are older than the retention period (time for replicas elsewhere to replay them, measured
by the clock); a replica that finds itself behind the pruned point rebuilds from SQL.

A shared store (a vector server every process writes to) has no replica to keep: the watermark only
follows the log, and nothing is replayed.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass, field
from datetime import timedelta

from sqlalchemy import and_, delete, func, select
from sqlalchemy.orm import Session

from ragstore.clock import SYSTEM_CLOCK, Clock
from ragstore.db.chunk_vectors import iter_indexed_vectors
from ragstore.db.engine import Database
from ragstore.db.models import (
    ChunkStatus,
    Collection,
    CollectionStatus,
    DocumentChunk,
    OpState,
    SyncMarker,
    SyncOperation,
)
from ragstore.errors import Unavailable
from ragstore.sync.operations import Operations, OutboxOp, load_ops, spec_of
from ragstore.vectors.base import VectorIndex

__all__ = ["PRUNED_THROUGH", "SCAN", "Progress", "RecoveryReport", "Replica"]

log = logging.getLogger(__name__)
Progress = Callable[[int, int], None]

SCAN = 1000
PRUNED_THROUGH = "outbox_pruned_through"


@dataclass
class RecoveryReport:
    rebuilt_collections: list[int] = field(default_factory=list)
    replayed_operations: int = 0
    applied_pending: int = 0
    # Collections whose lexical terms were rebuilt at open (a new analyzer, or built for the first time).
    relexed_collections: list[int] = field(default_factory=list)
    # Messages whose search terms were analysed again at open (another analyzer had built them).
    relexed_messages: int = 0
    # Set when a shared vector store could not be reached at open: the store serves, degraded.
    index_unavailable: str | None = None


@dataclass(eq=False)
class Replica:
    """Watermark, replay, rebuild and pruning for one process's index.

    `lock` is the applier's: one applier at a time per process, so the replica sees operations in a single
    order. `operations` makes an operation's effect (the same code whether applied first here or replayed).
    """

    db: Database
    index: VectorIndex
    operations: Operations
    lock: threading.RLock
    _: KW_ONLY
    retain_s: float = 3600.0
    clock: Clock = SYSTEM_CLOCK
    watermark: int = field(default=0, init=False)
    # Finished operations above the watermark this replica holds.
    reflected_above: set[int] = field(default_factory=set, init=False)
    collections: set[int] = field(init=False)  # the collections this replica holds (shared with `operations`)
    replays: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        self.collections = self.operations.collections

    def note_applied(self, op: OutboxOp) -> None:
        """An operation this process applied itself: reflected here, so never replayed."""
        self.reflected_above.add(op.id)
        self.collections.add(op.collection_id)

    # -- open ----------------------------------------------------------------------------------------------
    def open(self, report: RecoveryReport, progress: Progress | None = None) -> None:
        """Open every collection, rebuilding those the index cannot be trusted with; set the watermark.

        The caller holds `lock` and replays what follows (`advance`) afterwards.
        """
        with self.db.read() as s:
            collections = list(s.scalars(select(Collection).order_by(Collection.id)))
        pruned = self.pruned_through()
        positions = []
        try:
            for row in collections:
                positions.append(self._open_collection(row, pruned, report, progress))
        except Unavailable as exc:
            if not self.index.shared:
                raise
            # The store opens degraded: writes are kept (their chunks pending) and applied when the
            # shared vector store answers again; health reports the operations waiting on it.
            log.warning("the vector store is unavailable at open (%s); writes wait in the outbox", exc)
            report.index_unavailable = exc.message
        self.watermark = min(positions) if positions and not self.index.shared else pruned
        self.reflected_above.clear()

    def _open_collection(self, row: Collection, pruned: int, report: RecoveryReport, progress: Progress | None) -> int:
        """Open one collection in the index, rebuilding it if the index cannot be trusted; its position."""
        self.index.ensure_collection(spec_of(row))
        self.collections.add(row.id)
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
                spec, model = spec_of(row), row.embedding_model
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
            self.collections.add(collection_id)
            done = 0
            for batch in iter_indexed_vectors(self.db, collection_id, model, spec.dimension, batch_size=batch_size):
                self.index.upsert(collection_id, batch.ids, batch.vectors, self.operations.records(batch.ids))
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
                    else [int(i) for i, state in rows if state == OpState.DONE and i not in self.reflected_above]
                )
                for op in load_ops(self.db, todo):
                    self.operations.effect(op, replay=True)
                    self.reflected_above.add(op.id)
                    self.replays += 1
                    replayed += 1
                for op_id, state in rows:
                    if state == OpState.PENDING:
                        blocked = True
                    elif not blocked:
                        self.watermark = int(op_id)
                        self.reflected_above.discard(int(op_id))
                if len(rows) < SCAN:
                    break
                cursor = int(rows[-1][0])
            for cid in self.collections:
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
        for cid in set(self.collections) - set(ids):
            self.index.drop_collection(cid)
            self.collections.discard(cid)
        for cid in ids:
            self.rebuild(cid)
        self.watermark = min((self.index.applied_seq(c) for c in ids), default=self.pruned_through())
        self.reflected_above.clear()

    # -- retention -----------------------------------------------------------------------------------------
    def prune_done(self, keep_last: int = 1000) -> int:
        """Delete finished operations that every replica is past, keeping a short tail for inspection.

        This replica must hold them durably (its saved position), and other replicas get `retain_s` (by the
        clock's wall time) to replay them; one that falls further behind rebuilds when it sees
        `outbox_pruned_through`.
        """
        with self.lock:
            saved = (
                min((self.index.applied_seq(c) for c in self.collections), default=self.watermark)
                if self.index.is_durable() and not self.index.shared
                else self.watermark
            )
            upto = min(saved, self.watermark) - keep_last
        if upto <= 0:
            return 0
        cutoff = self.clock.now() - timedelta(seconds=self.retain_s)

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
