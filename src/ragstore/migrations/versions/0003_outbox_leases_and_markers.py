"""outbox leases and sync markers

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 14:20:00

Several processes now apply the outbox: an operation is claimed by writing a lease (owner + expiry) on it,
so that two workers never apply it at once and a dead worker's claim lapses. `sync_markers` holds the
few numbers processes must agree on, first of all `outbox_pruned_through`: a replica whose position is
behind it has missed operations that are gone and must rebuild instead of replaying.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("sync_operations", sa.Column("lease_owner", sa.String(length=128), nullable=True))
    op.add_column("sync_operations", sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "sync_markers",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_sync_markers")),
    )


def downgrade() -> None:
    op.drop_table("sync_markers")
    # A plain DROP COLUMN on both dialects (SQLite has it since 3.35): a batch copy of the table would break
    # the reporting views of 0002, which name it.
    op.drop_column("sync_operations", "lease_expires_at")
    op.drop_column("sync_operations", "lease_owner")
