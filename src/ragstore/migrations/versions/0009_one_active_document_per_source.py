"""documents: at most one active document per (collection, source_uri), enforced by a partial unique index

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04 14:40:00

Replacing a source read its active documents outside the writing transaction, so concurrent ingests of one
source could each keep theirs: 20 clients left 20 active documents with one source. Ingest now re-reads them
inside the transaction (serialised per source); this index makes a second active document impossible.

Databases written before may already hold such duplicates, and the index cannot be built over them. They
are resolved first, deterministically: of each source's active documents the newest (latest `created_at`,
then highest id) stays active; the others are marked `deleting` with their chunks, and one outbox `delete`
operation per collection removes their vectors, exactly as a replacement would have. Nothing is deleted
here; the applier finishes it. The downgrade drops the index only (resolved duplicates stay resolved).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEX = "uq_documents_active_source"
ACTIVE = sa.text("status = 'active'")

_documents = sa.table(
    "documents",
    sa.column("id", sa.BigInteger),
    sa.column("collection_id", sa.BigInteger),
    sa.column("source_uri", sa.String),
    sa.column("status", sa.String),
    sa.column("created_at", sa.DateTime(timezone=True)),
    sa.column("updated_at", sa.DateTime(timezone=True)),
)
_chunks = sa.table(
    "document_chunks",
    sa.column("id", sa.BigInteger),
    sa.column("document_id", sa.BigInteger),
    sa.column("status", sa.String),
    sa.column("updated_at", sa.DateTime(timezone=True)),
)
_operations = sa.table(
    "sync_operations",
    sa.column("collection_id", sa.BigInteger),
    sa.column("kind", sa.String),
    sa.column("chunk_ids", sa.JSON),
    sa.column("state", sa.String),
    sa.column("attempts", sa.Integer),
    sa.column("next_attempt_at", sa.DateTime(timezone=True)),
    sa.column("created_at", sa.DateTime(timezone=True)),
    sa.column("updated_at", sa.DateTime(timezone=True)),
)
_collections = sa.table("collections", sa.column("id", sa.BigInteger), sa.column("write_version", sa.BigInteger))


def _losers(conn: sa.Connection) -> dict[int, list[int]]:
    """Active documents that share their source with a newer active one, by collection."""
    doubled = (
        sa.select(_documents.c.collection_id, _documents.c.source_uri)
        .where(_documents.c.status == "active")
        .group_by(_documents.c.collection_id, _documents.c.source_uri)
        .having(sa.func.count() > 1)
    ).subquery()
    rows = conn.execute(
        sa.select(_documents.c.id, _documents.c.collection_id, _documents.c.source_uri)
        .join(
            doubled,
            sa.and_(
                doubled.c.collection_id == _documents.c.collection_id, doubled.c.source_uri == _documents.c.source_uri
            ),
        )
        .where(_documents.c.status == "active")
        .order_by(
            _documents.c.collection_id,
            _documents.c.source_uri,
            _documents.c.created_at.desc(),
            _documents.c.id.desc(),
        )
    ).all()
    losers: dict[int, list[int]] = {}
    kept: set[tuple[int, str]] = set()
    for doc_id, collection_id, source in rows:
        key = (int(collection_id), source)
        if key in kept:
            losers.setdefault(int(collection_id), []).append(int(doc_id))
        else:
            kept.add(key)  # the first row of a source is its newest: it stays
    return losers


def _retire(conn: sa.Connection, collection_id: int, document_ids: list[int]) -> None:
    now = datetime.now(UTC)
    chunk_ids: list[int] = []
    for start in range(0, len(document_ids), 500):
        part = document_ids[start : start + 500]
        chunk_ids += [int(i) for i in conn.scalars(sa.select(_chunks.c.id).where(_chunks.c.document_id.in_(part)))]
        conn.execute(sa.update(_documents).where(_documents.c.id.in_(part)).values(status="deleting", updated_at=now))
        conn.execute(
            sa.update(_chunks).where(_chunks.c.document_id.in_(part)).values(status="deleting", updated_at=now)
        )
    conn.execute(
        sa.insert(_operations).values(
            collection_id=collection_id,
            kind="delete",
            chunk_ids=chunk_ids,
            state="pending",
            attempts=0,
            next_attempt_at=now,
            created_at=now,
            updated_at=now,
        )
    )
    conn.execute(
        sa.update(_collections)
        .where(_collections.c.id == collection_id)
        .values(write_version=_collections.c.write_version + 1)
    )


def upgrade() -> None:
    conn = op.get_bind()
    for collection_id, document_ids in sorted(_losers(conn).items()):
        _retire(conn, collection_id, document_ids)
    op.create_index(
        INDEX,
        "documents",
        ["collection_id", "source_uri"],
        unique=True,
        sqlite_where=ACTIVE,
        postgresql_where=ACTIVE,
    )


def downgrade() -> None:
    op.drop_index(INDEX, table_name="documents")
