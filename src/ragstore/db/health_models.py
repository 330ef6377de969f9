"""The operations tables: `system_health`, a snapshot of every component each minute, so an operator can see
what health was an hour ago, not only now (ops/history.py); `slow_statements`, statements slower than
RAGSTORE_SLOW_QUERY_MS by fingerprint (db/slow.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, DateTime, Float, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ragstore.db.models import Base, BigId, JsonDoc, RunRecord

__all__ = ["MaintenanceRun", "SlowStatement", "SystemHealth"]


class SystemHealth(Base):
    __tablename__ = "system_health"
    __table_args__ = (Index("ix_system_health_taken_at", "taken_at"), {"sqlite_autoincrement": True})

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    # The schedule's slot ("2026-12-05T23:35"): unique, so of several processes the first to insert takes it.
    slot: Mapped[str] = mapped_column(String(32), unique=True)
    taken_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(16))  # ok, degraded or down
    components: Mapped[dict[str, Any]] = mapped_column(JsonDoc, default=dict)  # name -> {status, latency_ms?}
    database_latency_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    outbox_pending: Mapped[int] = mapped_column(Integer, default=0)
    outbox_dead: Mapped[int] = mapped_column(Integer, default=0)
    jobs_queued: Mapped[int] = mapped_column(Integer, default=0)
    jobs_dead: Mapped[int] = mapped_column(Integer, default=0)
    database_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    disk_free_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    rss_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)  # the process that took it
    cache_hit_ratios: Mapped[dict[str, Any]] = mapped_column(JsonDoc, default=dict)  # layer -> ratio (or None)
    # HTTP requests answered since the server started, over its processes (a counter: the admin dashboard's
    # rate and latency are the differences between two snapshots).
    requests_total: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    request_errors_total: Mapped[int | None] = mapped_column(BigInteger, nullable=True)  # 5xx
    request_seconds_total: Mapped[float | None] = mapped_column(Float, nullable=True)


class SlowStatement(Base):
    """A statement slower than RAGSTORE_SLOW_QUERY_MS, by fingerprint (its values removed: db/slow.py)."""

    __tablename__ = "slow_statements"

    fingerprint: Mapped[str] = mapped_column(String(32), primary_key=True)
    statement: Mapped[str] = mapped_column(Text)
    dialect: Mapped[str] = mapped_column(String(16))
    count: Mapped[int] = mapped_column(BigInteger, default=0)
    total_ms: Mapped[float] = mapped_column(Float, default=0.0)
    max_ms: Mapped[float] = mapped_column(Float, default=0.0)
    first_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class MaintenanceRun(RunRecord, Base):
    """One run of `ragstore maintenance optimize` or `cleanup` (runtime/maintenance.py): what each step did."""

    __tablename__ = "maintenance_runs"
    __table_args__ = (Index("ix_maintenance_runs_started_at", "started_at"), {"sqlite_autoincrement": True})

    action: Mapped[str] = mapped_column(String(16))  # optimize or cleanup
    dry_run: Mapped[bool] = mapped_column(Boolean, default=False)
