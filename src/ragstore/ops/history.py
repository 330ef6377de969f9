"""Health history: a snapshot of every component each minute in `system_health`, and reading it back.

`GET /health` answers for now; an operator paged at 3 am asks what it said at 2:40. The server's scheduler
takes a snapshot on RAGSTORE_HEALTH_SNAPSHOT_SCHEDULE (every minute by default). Each snapshot belongs to a
slot (the minute it was due); the slot is unique, so of several server processes the first to insert it
takes it and the others skip it, and the store holds one row a minute however many processes run. Rows
older than RAGSTORE_HEALTH_RETENTION_DAYS are deleted as new ones are taken (one indexed delete).
"""

from __future__ import annotations

import os
import shutil
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, func, select
from sqlalchemy.engine import CursorResult
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ragstore.clock import Clock
from ragstore.db.engine import Database
from ragstore.db.health_models import SystemHealth
from ragstore.db.models import Job, OpState, SyncOperation
from ragstore.schemas import HealthReport, HealthSnapshot
from ragstore.sync.jobs import JobState

if TYPE_CHECKING:
    from ragstore.ops.metrics import HttpTotals

__all__ = ["MAX_HOURS", "prune_history", "queue_counts", "read_history", "record_snapshot", "slot_of"]

MAX_HOURS = 24 * 31  # the longest window a history request may ask for


def slot_of(moment: datetime) -> str:
    """The minute a snapshot stands for: what makes two processes' snapshots of one minute collide."""
    return moment.strftime("%Y-%m-%dT%H:%M")


def record_snapshot(
    db: Database,
    clock: Clock,
    report: HealthReport,
    *,
    database_bytes: int,
    data_dir: Path,
    retention: timedelta,
    due: datetime | None = None,
    http: HttpTotals | None = None,
) -> HealthSnapshot | None:
    """Store this minute's snapshot (None when another process took the slot already), then delete rows
    older than `retention`. `due`: the slot the schedule fired for (default: now)."""
    now = clock.now()
    with db.read() as s:
        outbox, jobs = queue_counts(s)
    body = report.to_json()["components"]
    components: dict[str, dict[str, Any]] = {
        name: {k: part[k] for k in ("status", "latency_ms") if part.get(k) is not None} for name, part in body.items()
    }
    layers = body.get("cache", {}).get("layers", {})
    snapshot = HealthSnapshot(
        taken_at=now,
        status=report.status,
        components=components,
        database_latency_ms=report.components.database.latency_ms,
        outbox_pending=int(outbox.get(OpState.PENDING, 0)),
        outbox_dead=int(outbox.get(OpState.DEAD, 0)),
        jobs_queued=int(jobs.get(JobState.QUEUED, 0)),
        jobs_dead=int(jobs.get(JobState.DEAD, 0)),
        database_bytes=database_bytes,
        disk_free_bytes=shutil.disk_usage(data_dir).free if data_dir.exists() else None,
        rss_bytes=_rss_bytes(),
        cache_hit_ratios={name: _ratio(counts) for name, counts in layers.items()},
        requests_total=None if http is None else http.requests,
        request_errors_total=None if http is None else http.errors,
        request_seconds_total=None if http is None else http.seconds,
    )
    row = SystemHealth(slot=slot_of(due or now), **snapshot.model_dump())
    try:
        db.write(lambda s: s.add(row))
    except IntegrityError:  # another process took this slot
        return None
    prune_history(db, now - retention)
    return snapshot


def read_history(db: Database, since: datetime) -> list[HealthSnapshot]:
    """The snapshots taken since `since`, oldest first."""
    with db.read() as s:
        rows = s.scalars(
            select(SystemHealth).where(SystemHealth.taken_at >= since).order_by(SystemHealth.taken_at, SystemHealth.id)
        ).all()
        return [HealthSnapshot.model_validate(row, from_attributes=True) for row in rows]


def prune_history(db: Database, before: datetime) -> int:
    """Delete the snapshots taken before `before`; how many went."""

    def unit(s: Session) -> int:
        result: CursorResult[Any] = s.execute(delete(SystemHealth).where(SystemHealth.taken_at < before))  # type: ignore[assignment]
        return int(result.rowcount)

    return db.write(unit)


def queue_counts(s: Session) -> tuple[dict[str, int], dict[str, int]]:
    """Outbox operations and jobs by state (the snapshot and GET /metrics both report them)."""

    def by_state(column: Any) -> dict[str, int]:
        return {str(state): int(n) for state, n in s.execute(select(column, func.count()).group_by(column))}

    return by_state(SyncOperation.state), by_state(Job.state)


def _ratio(counts: dict[str, Any]) -> float | None:
    hits, misses = int(counts.get("hits", 0)), int(counts.get("misses", 0))
    return round(hits / (hits + misses), 4) if hits + misses else None


def _rss_bytes() -> int | None:
    """This process's resident memory (Linux's /proc; None elsewhere)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE")
