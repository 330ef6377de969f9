"""system_health, slow_statements and maintenance_runs: the operations tables of issue #20

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-05 23:40:00

One row per schedule slot (unique), taken by whichever process inserts it first; rows older than
RAGSTORE_HEALTH_RETENTION_DAYS are deleted as new ones come (ops/history.py). `slow_statements` holds
statements slower than RAGSTORE_SLOW_QUERY_MS by fingerprint, their values removed (db/slow.py).
`maintenance_runs` is the run ledger of `ragstore maintenance optimize|cleanup` (runtime/maintenance.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _id() -> sa.types.TypeEngine[int]:
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "system_health",
        sa.Column("id", _id(), nullable=False),
        sa.Column("slot", sa.String(length=32), nullable=False),
        sa.Column("taken_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("components", _json(), nullable=False),
        sa.Column("database_latency_ms", sa.Float(), nullable=True),
        sa.Column("outbox_pending", sa.Integer(), nullable=False),
        sa.Column("outbox_dead", sa.Integer(), nullable=False),
        sa.Column("jobs_queued", sa.Integer(), nullable=False),
        sa.Column("jobs_dead", sa.Integer(), nullable=False),
        sa.Column("database_bytes", sa.BigInteger(), nullable=False),
        sa.Column("disk_free_bytes", sa.BigInteger(), nullable=True),
        sa.Column("rss_bytes", sa.BigInteger(), nullable=True),
        sa.Column("cache_hit_ratios", _json(), nullable=False),
        sa.Column("requests_total", sa.BigInteger(), nullable=True),
        sa.Column("request_errors_total", sa.BigInteger(), nullable=True),
        sa.Column("request_seconds_total", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_system_health")),
        sa.UniqueConstraint("slot", name=op.f("uq_system_health_slot")),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_system_health_taken_at", "system_health", ["taken_at"])
    op.create_table(
        "slow_statements",
        sa.Column("fingerprint", sa.String(length=32), nullable=False),
        sa.Column("statement", sa.Text(), nullable=False),
        sa.Column("dialect", sa.String(length=16), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("total_ms", sa.Float(), nullable=False),
        sa.Column("max_ms", sa.Float(), nullable=False),
        sa.Column("first_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("fingerprint", name=op.f("pk_slow_statements")),
    )

    op.create_table(
        "maintenance_runs",
        sa.Column("id", _id(), nullable=False),
        sa.Column("slot", sa.String(64), nullable=True),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("dry_run", sa.Boolean(), nullable=False),
        sa.Column("trigger", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("duration_ms", sa.Float(), nullable=True),
        sa.Column("details", _json(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_maintenance_runs")),
        sa.UniqueConstraint("slot", name=op.f("uq_maintenance_runs_slot")),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_maintenance_runs_started_at", "maintenance_runs", ["started_at"])


def downgrade() -> None:
    op.drop_index("ix_maintenance_runs_started_at", table_name="maintenance_runs")
    op.drop_table("maintenance_runs")
    op.drop_table("slow_statements")
    op.drop_index("ix_system_health_taken_at", table_name="system_health")
    op.drop_table("system_health")
