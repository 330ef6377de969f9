"""lexical index, search feedback, query log and chunk analytics

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24 07:00:00

`chunk_lexemes` holds each chunk's analysed terms (written with the chunk, deleted with it by the foreign
key). The full-text index over it is dialect-specific:

- SQLite: `chunk_lexemes_fts`, an external-content FTS5 table (the terms are stored once, in
  `chunk_lexemes`), kept in step by triggers on `chunk_lexemes`, which also fire for the rows a foreign-key
  cascade deletes; and `chunk_lexemes_vocab` (fts5vocab) over it, for document frequencies. The
  tokenizer is `unicode61`: the terms are already analysed, it only splits on spaces.
- PostgreSQL: a stored generated `tsvector` column (`simple` configuration: no stemming, no stop words;
  the analyzer did that work) with a GIN index.

Collections that exist before this revision have no `lexical_indexes` row; the store builds their terms
when it next opens (an analyzer lives in Python, not in a migration).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SQLITE_FTS = [
    "CREATE VIRTUAL TABLE chunk_lexemes_fts USING fts5("
    "terms, content='chunk_lexemes', content_rowid='chunk_id', tokenize='unicode61 remove_diacritics 2')",
    # Document frequencies per term, read by the hybrid search's coverage check (lexical/coverage.py).
    "CREATE VIRTUAL TABLE chunk_lexemes_vocab USING fts5vocab('chunk_lexemes_fts', 'row')",
    "CREATE TRIGGER chunk_lexemes_fts_ai AFTER INSERT ON chunk_lexemes BEGIN "
    "INSERT INTO chunk_lexemes_fts(rowid, terms) VALUES (new.chunk_id, new.terms); END",
    "CREATE TRIGGER chunk_lexemes_fts_ad AFTER DELETE ON chunk_lexemes BEGIN "
    "INSERT INTO chunk_lexemes_fts(chunk_lexemes_fts, rowid, terms) VALUES ('delete', old.chunk_id, old.terms); END",
    "CREATE TRIGGER chunk_lexemes_fts_au AFTER UPDATE ON chunk_lexemes BEGIN "
    "INSERT INTO chunk_lexemes_fts(chunk_lexemes_fts, rowid, terms) VALUES ('delete', old.chunk_id, old.terms); "
    "INSERT INTO chunk_lexemes_fts(rowid, terms) VALUES (new.chunk_id, new.terms); END",
]

POSTGRES_FTS = [
    "ALTER TABLE chunk_lexemes ADD COLUMN tsv tsvector GENERATED ALWAYS AS (to_tsvector('simple', terms)) STORED",
    "CREATE INDEX ix_chunk_lexemes_tsv ON chunk_lexemes USING gin (tsv)",
]


def upgrade() -> None:
    op.create_table(
        "chunk_lexemes",
        sa.Column("chunk_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=False),
        sa.Column("collection_id", sa.BigInteger(), nullable=False),
        sa.Column("terms", sa.Text(), nullable=False),
        sa.Column("term_count", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["chunk_id"],
            ["document_chunks.id"],
            name=op.f("fk_chunk_lexemes_chunk_id_document_chunks"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("chunk_id", name=op.f("pk_chunk_lexemes")),
    )
    op.create_index("ix_chunk_lexemes_collection_id", "chunk_lexemes", ["collection_id"])
    op.create_table(
        "lexical_indexes",
        sa.Column("collection_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=False),
        sa.Column("analyzer", sa.String(length=32), nullable=False),
        sa.Column("analyzer_version", sa.String(length=64), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.ForeignKeyConstraint(
            ["collection_id"],
            ["collections.id"],
            name=op.f("fk_lexical_indexes_collection_id_collections"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("collection_id", name=op.f("pk_lexical_indexes")),
    )
    op.create_table(
        "search_feedback",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("collection_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("query", sa.Text(), nullable=False),
        sa.Column("chunk_id", sa.BigInteger(), nullable=False),
        sa.Column("document_id", sa.BigInteger(), nullable=True),
        sa.Column("relevant", sa.Boolean(), nullable=False),
        sa.Column("mode", sa.String(length=16), nullable=True),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.ForeignKeyConstraint(
            ["collection_id"],
            ["collections.id"],
            name=op.f("fk_search_feedback_collection_id_collections"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_search_feedback")),
    )
    op.create_index("ix_search_feedback_collection_created", "search_feedback", ["collection_id", "created_at"])
    op.create_index("ix_search_feedback_chunk_id", "search_feedback", ["chunk_id"])
    op.create_table(
        "query_log",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("collection_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("query", sa.Text(), nullable=True),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("k", sa.Integer(), nullable=False),
        sa.Column("result_count", sa.Integer(), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("cache_hit", sa.Boolean(), nullable=False),
        sa.Column("filtered", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.ForeignKeyConstraint(
            ["collection_id"],
            ["collections.id"],
            name=op.f("fk_query_log_collection_id_collections"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_query_log")),
    )
    op.create_index("ix_query_log_collection_created", "query_log", ["collection_id", "created_at"])
    op.create_table(
        "chunk_analytics",
        sa.Column("chunk_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=False),
        sa.Column("collection_id", sa.BigInteger(), nullable=False),
        sa.Column("returned_count", sa.BigInteger(), nullable=False),
        sa.Column("relevant_count", sa.Integer(), nullable=False),
        sa.Column("irrelevant_count", sa.Integer(), nullable=False),
        sa.Column("last_returned_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["chunk_id"],
            ["document_chunks.id"],
            name=op.f("fk_chunk_analytics_chunk_id_document_chunks"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("chunk_id", name=op.f("pk_chunk_analytics")),
    )
    op.create_index("ix_chunk_analytics_collection_id", "chunk_analytics", ["collection_id"])
    statements = SQLITE_FTS if op.get_bind().dialect.name == "sqlite" else POSTGRES_FTS
    for statement in statements:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for trigger in ("chunk_lexemes_fts_ai", "chunk_lexemes_fts_ad", "chunk_lexemes_fts_au"):
            op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
        op.execute("DROP TABLE IF EXISTS chunk_lexemes_vocab")
        op.execute("DROP TABLE IF EXISTS chunk_lexemes_fts")
    op.drop_index("ix_chunk_analytics_collection_id", table_name="chunk_analytics")
    op.drop_table("chunk_analytics")
    op.drop_index("ix_query_log_collection_created", table_name="query_log")
    op.drop_table("query_log")
    op.drop_index("ix_search_feedback_chunk_id", table_name="search_feedback")
    op.drop_index("ix_search_feedback_collection_created", table_name="search_feedback")
    op.drop_table("search_feedback")
    op.drop_table("lexical_indexes")
    op.drop_index("ix_chunk_lexemes_collection_id", table_name="chunk_lexemes")
    op.drop_table("chunk_lexemes")
