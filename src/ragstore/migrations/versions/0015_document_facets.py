"""document_facets: every scalar metadata value of a document in an indexed side table (issue #22)

Also the index of chunks by (document_id, status, id), from which a filter lists its visible chunks.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06 10:40:00

A metadata filter used to read every document's JSON (SQLite has no index on it; PostgreSQL's GIN index
serves equality only); the facet indexes now propose the documents that may pass and the JSON condition
checks only those (db/facets.py). The upgrade fills the table from the documents already stored, 2,000 at
a time; the downgrade drops it (the filters still work without it, by the JSON scan).
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from ragstore.db.facets import facet_rows

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    facets = op.create_table(
        "document_facets",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("document_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("collection_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=128), nullable=False),
        sa.Column("kind", sa.String(length=1), nullable=False),
        sa.Column("num", sa.Float(precision=53), nullable=True),
        sa.Column(
            "text", sa.String(length=64, collation="C").with_variant(sa.String(length=64), "sqlite"), nullable=True
        ),
        sa.ForeignKeyConstraint(["document_id"], ["documents.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_document_facets_number", "document_facets", ["collection_id", "key", "kind", "num", "document_id"]
    )
    op.create_index(
        "ix_document_facets_text", "document_facets", ["collection_id", "key", "kind", "text", "document_id"]
    )
    op.create_index("ix_document_facets_document", "document_facets", ["document_id"])
    op.create_index("ix_document_chunks_document_status", "document_chunks", ["document_id", "status", "id"])
    bind = op.get_bind()
    last = 0
    while True:
        batch = bind.execute(
            sa.text("SELECT id, collection_id, metadata FROM documents WHERE id > :last ORDER BY id LIMIT 2000"),
            {"last": last},
        ).all()
        if not batch:
            break
        last = int(batch[-1][0])
        rows = facet_rows((int(i), int(c), m if isinstance(m, dict) else json.loads(m or "{}")) for i, c, m in batch)
        if rows:
            op.bulk_insert(facets, rows)


def downgrade() -> None:
    op.drop_index("ix_document_chunks_document_status", table_name="document_chunks")
    op.drop_index("ix_document_facets_document", table_name="document_facets")
    op.drop_index("ix_document_facets_text", table_name="document_facets")
    op.drop_index("ix_document_facets_number", table_name="document_facets")
    op.drop_table("document_facets")
