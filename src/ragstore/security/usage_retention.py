"""Keeping `api_usage_logs` bounded: monthly partitions made ahead and dropped whole on PostgreSQL, batched
deletes on SQLite.

On PostgreSQL the table is partitioned by month (migration 0010): retention drops a month once all of it is
older than RAGSTORE_USAGE_RETAIN_DAYS, which frees its space at once, with no long DELETE, no dead tuples
and no vacuum. The job also makes the partitions of the coming months, so rows never land in the DEFAULT
partition (a row outside every month goes there rather than failing; retention deletes those in batches).
SQLite has no partitions: old rows go in batches of `batch` rows, each its own short transaction, so the
usage writer and the requests' own writes wait at most for one batch.
"""

from __future__ import annotations

import logging
import re
from datetime import date, datetime, timedelta
from functools import partial

from sqlalchemy import DateTime, Table, column, delete, select, table, text
from sqlalchemy.orm import Session
from sqlalchemy.sql.expression import TableClause

from ragstore.db.engine import Database
from ragstore.db.security_models import ApiUsageLog
from ragstore.schemas import UsageMaintenance

__all__ = ["MONTHS_AHEAD", "maintain_usage_table", "month_partition_ddl", "next_month"]

log = logging.getLogger(__name__)
MONTHS_AHEAD = 3  # this month and the next two exist at all times
USAGE_TABLE: Table = ApiUsageLog.__table__  # type: ignore[assignment]
_PARTITION = re.compile(r"api_usage_logs_(\d{4})(\d{2})")
_PARTITIONS = text(
    "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
    "WHERE i.inhparent = 'api_usage_logs'::regclass"
)


def next_month(month: date) -> date:
    return date(month.year + (month.month == 12), month.month % 12 + 1, 1)


def month_partition_ddl(month: date) -> str:
    """The DDL of the partition holding `month` (migration 0010 makes the first ones the same way)."""
    start = month.replace(day=1)
    return (
        f"CREATE TABLE IF NOT EXISTS api_usage_logs_{start:%Y%m} PARTITION OF api_usage_logs "
        f"FOR VALUES FROM ('{start.isoformat()}') TO ('{next_month(start).isoformat()}')"
    )


def maintain_usage_table(db: Database, *, now: datetime, retain_days: int, batch: int = 5000) -> UsageMaintenance:
    cutoff = now - timedelta(days=retain_days)
    dialect = db.engine.dialect.name
    report = UsageMaintenance(cutoff=cutoff, dialect=dialect)
    if dialect == "postgresql":
        report.partitions_created = _create_ahead(db, now.date())
        report.partitions_dropped = _drop_expired(db, cutoff.date())
        default = table("api_usage_logs_default", column("id"), column("created_at", DateTime(timezone=True)))
        report.rows_deleted = _delete_in_batches(db, default, cutoff, batch)
    else:
        report.rows_deleted = _delete_in_batches(db, USAGE_TABLE, cutoff, batch)
    return report


def _create_partition(month: date, session: Session) -> None:
    """Create the month's partition, moving into it any rows the DEFAULT partition caught for that month
    (written while no partition existed: PostgreSQL refuses the new partition while DEFAULT holds its rows).
    One transaction: the rows are never lost nor seen twice; if a row lands meanwhile, it all rolls back and
    the next run tries again."""
    bounds = {"start": month, "end": next_month(month)}
    session.execute(
        text(
            "CREATE TEMPORARY TABLE usage_moving ON COMMIT DROP AS WITH moved AS ("
            "DELETE FROM api_usage_logs_default WHERE created_at >= :start AND created_at < :end RETURNING *"
            ") SELECT * FROM moved"
        ),
        bounds,
    )
    session.execute(text(month_partition_ddl(month)))
    session.execute(text("INSERT INTO api_usage_logs SELECT * FROM usage_moving"))


def _execute(statement: str, session: Session) -> None:
    session.execute(text(statement))


def _partitions(db: Database) -> dict[str, date]:
    """Each monthly partition by name, with its first day (the DEFAULT partition is not one)."""
    months: dict[str, date] = {}
    for (name,) in db.fetch(_PARTITIONS):
        match = _PARTITION.fullmatch(name)
        if match is not None:
            months[name] = date(int(match.group(1)), int(match.group(2)), 1)
    return months


def _create_ahead(db: Database, today: date) -> list[str]:
    existing = _partitions(db)
    created: list[str] = []
    month = today.replace(day=1)
    for _ in range(MONTHS_AHEAD):
        name = f"api_usage_logs_{month:%Y%m}"
        if name not in existing:
            try:
                db.write(partial(_create_partition, month))
            except Exception as exc:  # e.g. the DEFAULT partition already holds rows of that month
                log.warning("could not create the usage partition %s: %s", name, exc)
            else:
                created.append(name)
        month = next_month(month)
    return created


def _drop_expired(db: Database, cutoff: date) -> list[str]:
    """Drop every month that ends on or before the cutoff day: all its rows are past retention."""
    dropped: list[str] = []
    for name, first in sorted(_partitions(db).items(), key=lambda item: item[1]):
        if next_month(first) <= cutoff:
            # The name matched _PARTITION, so it is safe to write into the statement as it is.
            db.write(partial(_execute, f'DROP TABLE IF EXISTS "{name}"'))
            dropped.append(name)
    return dropped


def _delete_in_batches(db: Database, rows: TableClause, cutoff: datetime, batch: int) -> int:
    """Delete rows older than the cutoff, `batch` at a time, each batch its own transaction."""
    ids = select(rows.c.id).where(rows.c.created_at < cutoff).limit(batch)
    deleted = 0
    while True:
        count = db.write(lambda s: s.execute(delete(rows).where(rows.c.id.in_(ids))).rowcount)  # type: ignore[attr-defined]
        deleted += int(count or 0)
        if not count or count < batch:
            return deleted
