"""Applies the outbox to the vector index: the second half of every two-phase write.

Phase one (done by the writer) committed rows in state `pending` and a `sync_operations` row. Here the
operation reaches the index (idempotently), and only then does a second transaction mark the chunks
`indexed` and the operation `done`. Upserts read the chunks' *current* rows, so an operation applied late,
twice or out of order can never resurrect a chunk that SQL has since deleted: operations commute, which
is what lets several processes apply them in parallel.

`OutboxApplier` is the facade the store and the worker use; it composes three parts, each with one concern:

- `leases.py` (`OutboxLeases`): which process applies which operation — claims under a lease, and the
  release of leases held by dead processes of this host.
- `operations.py` (`Operations`): what applying one operation means — its effect on the index, phase two in
  SQL, failures rescheduled with backoff or dead-lettered, and the outbox's state queries.
- `replica.py` (`Replica`): this process's replica following the outbox as a log — open and recovery,
  rebuilds, replaying others' work, the watermark, and pruning finished operations after `retain_s`.

Every time they write or compare (lease expiry, retry schedule, applied_at, retention cut-off) comes from
one `clock`, so tests move time with a ManualClock instead of sleeping.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import numpy as np
from sqlalchemy.orm import Session

from ragstore.clock import SYSTEM_CLOCK, Clock
from ragstore.db.engine import Database
from ragstore.db.planner_statistics import PlannerStatistics
from ragstore.sync.leases import OutboxLeases
from ragstore.sync.operations import ApplyStats, Operations, OutboxOp, finish_operation
from ragstore.sync.replica import Progress, RecoveryReport, Replica
from ragstore.telemetry import INGEST_STAGE_DURATION
from ragstore.vectors.base import VectorIndex, VectorRecord

__all__ = ["ApplyStats", "OutboxApplier", "OutboxOp", "RecoveryReport"]

log = logging.getLogger(__name__)


class OutboxApplier:
    # Phase two, reached through the class so that a crash test can replace it (tests/crash_child.py).
    _finish = staticmethod(finish_operation)

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
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.db = db
        self.index = index
        # One applier at a time per process: the replica sees operations in a single order.
        self.lock = threading.RLock()
        self.leases = OutboxLeases(db, lease_s=lease_s, clock=clock)
        self.operations = Operations(
            db,
            index,
            set(),
            max_attempts=max_attempts,
            backoff_base_s=backoff_base_s,
            backoff_max_s=backoff_max_s,
            clock=clock,
        )
        self.replica = Replica(db, index, self.operations, self.lock, retain_s=retain_s, clock=clock)
        self.statistics = PlannerStatistics(db, clock)  # a bulk load's lookups need them (db/planner_statistics.py)
        self._clock = clock
        self.applications = 0  # operations this process applied as their claimer (not replays)
        # Told which collections an apply changed, after its commit (for cache invalidation and announcements).
        self.on_finished: Callable[[set[int]], None] | None = None

    @property
    def owner(self) -> str:
        return self.leases.owner

    @property
    def clock(self) -> Clock:
        return self._clock

    @clock.setter
    def clock(self, clock: Clock) -> None:
        """Swap the clock of every part at once (a test moving time for a store that is already open)."""
        self._clock = self.leases.clock = self.operations.clock = self.replica.clock = self.statistics.clock = clock

    # -- the parts' settings and counters, where they were before the split ----------------------------------
    @property
    def watermark(self) -> int:
        return self.replica.watermark

    @watermark.setter
    def watermark(self, value: int) -> None:
        self.replica.watermark = value

    @property
    def replays(self) -> int:
        return self.replica.replays

    @property
    def lease_s(self) -> float:
        return self.leases.lease_s

    @property
    def retain_s(self) -> float:
        return self.replica.retain_s

    @property
    def max_attempts(self) -> int:
        return self.operations.max_attempts

    @property
    def backoff_base_s(self) -> float:
        return self.operations.backoff_base_s

    @property
    def backoff_max_s(self) -> float:
        return self.operations.backoff_max_s

    # -- open / recovery ---------------------------------------------------------------------------------
    def recover(self, progress: Progress | None = None) -> RecoveryReport:
        """Bring this replica level with SQL: rebuild what is unknown or pruned away, replay what follows."""
        report = RecoveryReport()
        self.release_dead_leases()
        with self.lock:
            self.replica.open(report, progress)
            report.replayed_operations = self.advance()
            report.applied_pending = self.apply_pending(ignore_schedule=True).applied
            if report.index_unavailable is None:
                self.index.persist()
        return report

    def pruned_through(self) -> int:
        return self.replica.pruned_through()

    def rebuild(self, collection_id: int, progress: Progress | None = None, batch_size: int = 5000) -> int:
        """Recreate a collection's index from the chunks SQL holds as indexed and their stored embeddings."""
        return self.replica.rebuild(collection_id, progress=progress, batch_size=batch_size)

    def advance(self) -> int:
        """Replay what other processes finished since the watermark, then move the watermark; returns replays."""
        return self.replica.advance()

    def prune_done(self, keep_last: int = 1000) -> int:
        """Delete finished operations every replica is past and that are older than `retain_s`."""
        return self.replica.prune_done(keep_last=keep_last)

    def persist(self) -> None:
        """Write the index replica to disk and drop outbox rows it now holds durably (under the apply lock,
        so no operation lands between the save and the prune)."""
        with self.lock:
            self.index.persist()
            self.prune_done()

    # -- applying ------------------------------------------------------------------------------------------
    def claim(self, *, ignore_schedule: bool = False, limit: int = 1000) -> list[OutboxOp]:
        """Lease due pending operations: unclaimed ones, lapsed leases, and this process's own writes."""
        return self.leases.claim(ignore_schedule=ignore_schedule, limit=limit)

    def release_dead_leases(self) -> int:
        """Release leases held by processes of this host that have died (others wait for expiry)."""
        return self.leases.release_dead_leases()

    def apply_pending(self, *, ignore_schedule: bool = False, limit: int = 1000) -> ApplyStats:
        """Claim and apply due operations in id order; failures are rescheduled with backoff or dead-lettered."""
        stats = ApplyStats()
        changed: set[int] = set()
        with self.lock:
            for op in self.claim(ignore_schedule=ignore_schedule, limit=limit):
                owner = self.owner
                log.debug("applying sync operation %d (%s) as %s", op.id, op.kind, owner)
                try:
                    with INGEST_STAGE_DURATION.labels("index").time():
                        self.operations.effect(op, replay=False)
                except Exception as exc:
                    dead = self.operations.record_failure(op, exc, owner)
                    stats.failed += 1
                    stats.dead += int(dead)
                    continue

                def finish(s: Session, op: OutboxOp = op, owner: str = owner) -> bool:
                    return self._finish(s, op=op, owner=owner, now=self.clock.now())

                if self.db.write(finish):
                    self.applications += 1
                    changed.add(op.collection_id)
                    log.debug("applied sync operation %d (%s) as %s", op.id, op.kind, owner)
                self.replica.note_applied(op)
                stats.applied += 1
                # Between operations, not after the call: one call may apply a backlog of thousands.
                self.statistics.refresh_if_due()
            self.advance()
        if changed and self.on_finished is not None:
            self.on_finished(changed)
        return stats

    def records(self, ids: np.ndarray, session: Session | None = None) -> list[VectorRecord] | None:
        """Document id, content hash and metadata per chunk, in the order of `ids`, for backends that keep them."""
        return self.operations.records(ids, session)

    # -- the outbox's state --------------------------------------------------------------------------------
    def counts(self) -> dict[str, int]:
        """Outbox operations by state (pending, done, dead), zeros included."""
        return self.operations.counts()

    def failing(self) -> tuple[int, str | None]:
        """Pending operations that have failed at least once (waiting to retry), and the newest error."""
        return self.operations.failing()

    def has_pending(self) -> bool:
        """Whether any operation still waits to be applied (one indexed lookup, not a count)."""
        return self.operations.has_pending()

    def retry_dead(self) -> int:
        """Queue dead-lettered operations again, as new operations (ids above every replica's watermark)."""
        return self.operations.retry_dead()
