"""consistency_reports (every run of the consistency checker) and store_state (the active vector backend)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 12:00:00

A report holds when the check ran, how long it took, the problem counts by kind and the details (ids,
repairs made), so each run can be compared with the one before. `slot` is unique: of several server
processes whose schedules fire at once, only the one that inserts the slot's row runs the check.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JsonDoc = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "consistency_reports",
        sa.Column("id", BigId, nullable=False),
        sa.Column("slot", sa.String(64), nullable=True),
        sa.Column("trigger", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("backend", sa.String(32), nullable=False),
        sa.Column("collection", sa.String(128), nullable=True),
        sa.Column("repair", sa.Boolean(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("duration_ms", sa.Float(), nullable=True),
        sa.Column("problems", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("counts", JsonDoc, nullable=False),
        sa.Column("details", JsonDoc, nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consistency_reports")),
        sa.UniqueConstraint("slot", name=op.f("uq_consistency_reports_slot")),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_consistency_reports_started_at", "consistency_reports", ["started_at"])
    op.create_table(
        "store_state",
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("value", JsonDoc, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_store_state")),
    )


def downgrade() -> None:
    op.drop_table("store_state")
    op.drop_index("ix_consistency_reports_started_at", table_name="consistency_reports")
    op.drop_table("consistency_reports")
