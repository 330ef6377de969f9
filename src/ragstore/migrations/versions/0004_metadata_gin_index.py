"""GIN index on documents.metadata (PostgreSQL)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 15:00:00

Metadata equality and `in` filters compile to JSONB containment (`metadata @> '{"lang": "ko"}'`) on
PostgreSQL, which a `jsonb_path_ops` GIN index answers without reading every document of the collection.
SQLite keeps its JSON text and evaluates `json_extract`; it gets no index here.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.create_index(
            "ix_documents_metadata_gin",
            "documents",
            ["metadata"],
            postgresql_using="gin",
            postgresql_ops={"metadata": "jsonb_path_ops"},
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index("ix_documents_metadata_gin", table_name="documents")
