"""documents: one content may be stored under several sources; the encoding and the raw hash of a source

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04 22:30:00

- The unique constraint on (collection_id, content_hash) becomes a plain index. A file whose text another
  document already holds used to be reported "unchanged" and not stored under its own source; ingest now
  reports it as a duplicate, and `--keep-duplicates` stores it under its own source (its chunks share the
  other's embeddings, which are keyed by content, so nothing is embedded twice). One ACTIVE document per
  source stays enforced (migration 0009).
- `encoding`: the text encoding a file was decoded from (utf-8, cp949, ...), NULL for text sent as text.
- `source_hash`: SHA-256 of the source's raw bytes as read (before decoding and extraction), so that a
  sync skips an unchanged file after hashing it, without parsing it again.

On SQLite the table is rebuilt (the only way SQLite drops a constraint); the migration runner does it with
foreign keys off and checks them afterwards (ragstore.migrations.Migrator._run_sqlite).

Downgrade restores the unique constraint, and refuses (naming how many) while two active or deleting
documents of one collection hold the same content.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UNIQUE = "uq_documents_collection_content_hash"
INDEX = "ix_documents_collection_content_hash"


def _rebuilt(sqlite: bool) -> dict[str, object]:
    """Batch options: on SQLite the table is rebuilt, with AUTOINCREMENT (ids are never reused)."""
    return {"recreate": "always", "table_kwargs": {"sqlite_autoincrement": True}} if sqlite else {}


def _sequence(conn: sa.Connection) -> int:
    """The highest id SQLite ever gave a document (a rebuilt table starts from the highest id it holds)."""
    found = conn.execute(sa.text("SELECT seq FROM sqlite_sequence WHERE name = 'documents'")).scalar()
    return int(found or 0)


def _restore_sequence(conn: sa.Connection, seq: int) -> None:
    conn.execute(sa.text("UPDATE sqlite_sequence SET seq = max(seq, :seq) WHERE name = 'documents'"), {"seq": seq})
    conn.execute(
        sa.text(
            "INSERT INTO sqlite_sequence (name, seq) SELECT 'documents', :seq "
            "WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'documents')"
        ),
        {"seq": seq},
    )


def upgrade() -> None:
    conn = op.get_bind()
    sqlite = conn.dialect.name == "sqlite"
    seq = _sequence(conn) if sqlite else 0
    with op.batch_alter_table("documents", **_rebuilt(sqlite)) as batch:  # type: ignore[arg-type]
        batch.drop_constraint(UNIQUE, type_="unique")
        batch.add_column(sa.Column("encoding", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("source_hash", sa.String(length=64), nullable=True))
        batch.create_index(INDEX, ["collection_id", "content_hash"], unique=False)
    if sqlite:
        _restore_sequence(conn, seq)


def downgrade() -> None:
    conn = op.get_bind()
    shared = conn.execute(
        sa.text(
            "SELECT count(*) FROM (SELECT collection_id, content_hash FROM documents "
            "GROUP BY collection_id, content_hash HAVING count(*) > 1) AS twins"
        )
    ).scalar_one()
    if shared:
        raise RuntimeError(
            f"{shared} contents are stored under more than one source (kept duplicates); delete the extra "
            "documents before downgrading below revision 0011"
        )
    sqlite = conn.dialect.name == "sqlite"
    seq = _sequence(conn) if sqlite else 0
    with op.batch_alter_table("documents", **_rebuilt(sqlite)) as batch:  # type: ignore[arg-type]
        batch.drop_index(INDEX)
        batch.drop_column("source_hash")
        batch.drop_column("encoding")
        batch.create_unique_constraint(UNIQUE, ["collection_id", "content_hash"])
    if sqlite:
        _restore_sequence(conn, seq)
