"""index_tuning: the search breadth (HNSW ef_search) tuned per collection, with the measurement behind it

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-12 10:20:00

One row per collection and vector backend (issue 22): the breadth chosen for RAGSTORE_TARGET_RECALL, the
recall@10 curve it was chosen from, and the size and time it was measured at, which decide when it is
measured again (indexing/tuning.py). Deleted with its collection. Collections that exist before this
revision have no row and search at RAGSTORE_HNSW_EF_SEARCH until the server's check (or `ragstore index
tune`) measures them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "index_tuning",
        sa.Column("collection_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=False),
        sa.Column("backend", sa.String(length=32), nullable=False),
        sa.Column("ef_search", sa.Integer(), nullable=False),
        sa.Column("target_recall", sa.Float(), nullable=False),
        sa.Column("recall", sa.Float(), nullable=False),
        sa.Column("met", sa.Boolean(), nullable=False),
        sa.Column("vector_count", sa.BigInteger(), nullable=False),
        sa.Column("sample_size", sa.Integer(), nullable=False),
        sa.Column("curve", _json(), nullable=False),
        sa.Column("duration_ms", sa.Float(), nullable=False),
        sa.Column("tuned_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["collection_id"],
            ["collections.id"],
            name=op.f("fk_index_tuning_collection_id_collections"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("collection_id", "backend", name=op.f("pk_index_tuning")),
    )


def downgrade() -> None:
    op.drop_table("index_tuning")
