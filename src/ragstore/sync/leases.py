"""Who applies which outbox operation: leases on `sync_operations` rows.

Any number of processes apply the outbox. Each claims pending operations with a lease (`FOR UPDATE SKIP
LOCKED` on PostgreSQL; SQLite's `BEGIN IMMEDIATE` serialises the claim), so no two apply the same one at
once, and a dead process's lease lapses so that another takes over. A process of this host that has died
has its leases released at once, without waiting for them to lapse.

Lease expiries and retry schedules are compared with the clock's wall time, passed to SQL as a parameter
(never the database's `now()`), so a ManualClock lets a lease lapse on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, or_, select, update
from sqlalchemy.orm import Session

from ragstore.clock import SYSTEM_CLOCK, Clock
from ragstore.db.engine import Database
from ragstore.db.models import OpState, SyncOperation
from ragstore.sync.operations import OutboxOp, ops_by_id
from ragstore.sync.outbox import owner_is_dead_here, process_owner

__all__ = ["OutboxLeases"]

log = logging.getLogger(__name__)


class OutboxLeases:
    def __init__(self, db: Database, *, lease_s: float = 60.0, clock: Clock = SYSTEM_CLOCK) -> None:
        self.db = db
        self.lease_s = lease_s
        self.clock = clock

    @property
    def owner(self) -> str:
        return process_owner()

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
            if s.scalar(claimable(self.clock.now()).limit(1)) is None:
                return []

        def unit(s: Session) -> list[OutboxOp]:
            now = self.clock.now()
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
            return ops_by_id(s, ids)

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
