"""The outbox and the job queue as an operator acts on them: what is stuck, and queuing it again.

Dead letters are work that failed every attempt (an index that refused a vector, a job whose handler kept
raising). Once the cause is fixed, a person queues them again from the admin page or the API; each retry is
an audit record, since it makes the store do again what it gave up on.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select

from ragstore.clock import Clock, as_utc
from ragstore.db.engine import Database
from ragstore.db.models import OpState, SyncOperation
from ragstore.ops.history import queue_counts
from ragstore.schemas import DeadOperation, OutboxStatus, RetryReport
from ragstore.security.audit import AuditTrail
from ragstore.sync.applier import OutboxApplier
from ragstore.sync.jobs import JobQueue

__all__ = ["DEAD_SHOWN", "QueueActions"]

DEAD_SHOWN = 100  # the newest dead operations an outbox status lists


@dataclass(kw_only=True, slots=True)
class QueueActions:
    """Each field is the store's component of that name, handed in by `wiring.build`."""

    db: Database
    clock: Clock
    applier: OutboxApplier
    jobs: JobQueue
    audit_trail: AuditTrail

    def outbox(self) -> OutboxStatus:
        """Pending and dead operations, the wait of the oldest pending one, and the newest dead ones."""
        with self.db.read() as s:
            outbox, _ = queue_counts(s)
            oldest = s.scalar(select(func.min(SyncOperation.created_at)).where(SyncOperation.state == OpState.PENDING))
            rows = s.execute(
                select(SyncOperation)
                .where(SyncOperation.state == OpState.DEAD)
                .order_by(SyncOperation.id.desc())
                .limit(DEAD_SHOWN)
            ).scalars()
            dead = [
                DeadOperation(
                    id=op.id,
                    collection_id=op.collection_id,
                    kind=op.kind,
                    chunks=len(op.chunk_ids or []),
                    attempts=op.attempts,
                    last_error=op.last_error,
                    updated_at=op.updated_at,
                )
                for op in rows
            ]
        age = None if oldest is None else max(0.0, (self.clock.now() - as_utc(oldest)).total_seconds())
        return OutboxStatus(
            pending=int(outbox.get(OpState.PENDING, 0)),
            dead=int(outbox.get(OpState.DEAD, 0)),
            oldest_pending_age_s=None if age is None else round(age, 1),
            dead_operations=dead,
        )

    def retry_dead_operations(self) -> RetryReport:
        """Queue every dead outbox operation again (as new operations: replicas are past the dead ids)."""
        with self.audit_trail.recorded("outbox.retry_dead", target="*") as done:
            requeued = self.applier.retry_dead()
            done["requeued"] = requeued
        return RetryReport(requeued=requeued)

    def retry_dead_job(self, job_id: int) -> None:
        """Queue one dead job again, its attempts reset; NotFound for no such job, Conflict if it is not dead."""
        with self.audit_trail.recorded("job.retry", target=f"job:{job_id}"):
            self.jobs.requeue_dead(job_id)
