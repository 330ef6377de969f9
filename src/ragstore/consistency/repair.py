"""Repairs the safe kinds of drift, every one through the outbox like any other index change.

A repair never deletes a document and never touches a vector directly: it queues outbox operations (delete
orphans, upsert missing and stale chunks from the embeddings table, drop an index collection SQL does not
know), re-queues stuck operations, and recounts chunk counts; then the applier applies them with the same
idempotent code that applies every write.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, aliased

from ragstore.consistency.checker import CheckResult
from ragstore.consistency.kinds import KINDS, Kind
from ragstore.db.engine import Database
from ragstore.db.models import Document, DocumentChunk, OpKind, OpState, SyncOperation, utcnow

__all__ = ["RepairOutcome", "Repairer"]

log = logging.getLogger(__name__)
OPERATION_IDS = 10_000  # chunk ids per queued operation: a repair of a million vectors is 100 operations
QueueFn = Callable[[Session, int, str, list[int]], object]


@dataclass
class RepairOutcome:
    queued_operations: dict[str, int] = field(default_factory=dict)  # kind -> operations queued
    recounted_documents: int = 0
    rescheduled_operations: int = 0
    requeued_dead: int = 0
    applied: int = 0
    failed: int = 0
    left_alone: dict[str, int] = field(default_factory=dict)  # unsafe kind -> count reported only

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Repairer:
    def __init__(
        self, db: Database, *, queue: QueueFn, apply: Callable[[], tuple[int, int]], retry_dead: Callable[[], int]
    ) -> None:
        self.db = db
        self.queue = queue
        self.apply = apply
        self.retry_dead = retry_dead

    def repair(self, result: CheckResult) -> RepairOutcome:
        outcome = RepairOutcome()
        dead = any(f.kind is Kind.STUCK_OPERATIONS and f.reason == "dead" for f in result.findings)
        overdue = [
            i for f in result.findings if f.kind is Kind.STUCK_OPERATIONS and f.reason == "overdue" for i in f.all_ids
        ]
        for f in result.findings:
            if not KINDS[f.kind].safe:
                outcome.left_alone[f.kind.value] = outcome.left_alone.get(f.kind.value, 0) + f.count

        def unit(s: Session) -> None:
            for f in result.findings:
                if f.collection_id is None:
                    continue
                if f.kind is Kind.ORPHAN_VECTORS and f.reason == "collection":
                    self._queue(s, outcome, f.collection_id, OpKind.DROP_COLLECTION, [])
                elif f.kind is Kind.ORPHAN_VECTORS:
                    self._queue(s, outcome, f.collection_id, OpKind.DELETE, f.all_ids)
                elif f.kind in (Kind.MISSING_VECTORS, Kind.STALE_VECTORS):
                    self._queue(s, outcome, f.collection_id, OpKind.UPSERT, f.all_ids)
                elif f.kind is Kind.COUNT_DRIFT:
                    outcome.recounted_documents += _recount(s, f.all_ids)
            if overdue:
                # Due now, and free to claim unless a live lease still holds them.
                now = utcnow()
                s.execute(
                    update(SyncOperation)
                    .where(SyncOperation.id.in_(overdue), SyncOperation.state == OpState.PENDING)
                    .values(next_attempt_at=now)
                )
                s.execute(
                    update(SyncOperation)
                    .where(SyncOperation.id.in_(overdue), SyncOperation.lease_expires_at < now)
                    .values(lease_owner=None, lease_expires_at=None)
                )
                outcome.rescheduled_operations = len(overdue)

        self.db.write(unit)
        if dead:
            outcome.requeued_dead = self.retry_dead()
        outcome.applied, outcome.failed = self.apply()
        log.info("consistency repair: %s", outcome.to_dict())
        return outcome

    def _queue(self, s: Session, outcome: RepairOutcome, collection_id: int, kind: str, ids: list[int]) -> None:
        parts = [ids[i : i + OPERATION_IDS] for i in range(0, len(ids), OPERATION_IDS)] or [[]]
        for part in parts:
            self.queue(s, collection_id, kind, part)
        outcome.queued_operations[kind] = outcome.queued_operations.get(kind, 0) + len(parts)


def _recount(s: Session, document_ids: list[int]) -> int:
    chunk = aliased(DocumentChunk)
    counted = select(func.count(chunk.id)).where(chunk.document_id == Document.id).correlate(Document).scalar_subquery()
    total = 0
    for start in range(0, len(document_ids), OPERATION_IDS):
        part = document_ids[start : start + OPERATION_IDS]
        done = s.execute(update(Document).where(Document.id.in_(part)).values(chunk_count=counted))
        total += int(done.rowcount or 0)  # type: ignore[attr-defined]
    return total
