"""conversations, messages, message feedback, and full-text search over messages

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-05 01:00:00

`message_lexemes` holds each message's analysed terms (the documents' analyzer), written with the message and
deleted with it by the foreign key. The full-text index over it follows migration 0005's pattern:
- SQLite: `message_lexemes_fts`, an external-content FTS5 table kept by triggers (which also fire for rows a
  cascade deletes), and `message_lexemes_vocab` (fts5vocab) for document frequencies;
- PostgreSQL: a stored generated `tsvector` column (`simple` configuration) with a GIN index.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SQLITE_FTS = [
    "CREATE VIRTUAL TABLE message_lexemes_fts USING fts5("
    "terms, content='message_lexemes', content_rowid='message_id', tokenize='unicode61 remove_diacritics 2')",
    "CREATE VIRTUAL TABLE message_lexemes_vocab USING fts5vocab('message_lexemes_fts', 'row')",
    "CREATE TRIGGER message_lexemes_fts_ai AFTER INSERT ON message_lexemes BEGIN "
    "INSERT INTO message_lexemes_fts(rowid, terms) VALUES (new.message_id, new.terms); END",
    "CREATE TRIGGER message_lexemes_fts_ad AFTER DELETE ON message_lexemes BEGIN "
    "INSERT INTO message_lexemes_fts(message_lexemes_fts, rowid, terms) "
    "VALUES ('delete', old.message_id, old.terms); END",
    "CREATE TRIGGER message_lexemes_fts_au AFTER UPDATE ON message_lexemes BEGIN "
    "INSERT INTO message_lexemes_fts(message_lexemes_fts, rowid, terms) "
    "VALUES ('delete', old.message_id, old.terms); "
    "INSERT INTO message_lexemes_fts(rowid, terms) VALUES (new.message_id, new.terms); END",
]

POSTGRES_FTS = [
    "ALTER TABLE message_lexemes ADD COLUMN tsv tsvector GENERATED ALWAYS AS (to_tsvector('simple', terms)) STORED",
    "CREATE INDEX ix_message_lexemes_tsv ON message_lexemes USING gin (tsv)",
]


def _id() -> sa.types.TypeEngine[int]:
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "conversations",
        sa.Column("id", sa.String(length=26), nullable=False),
        sa.Column("owner_user_id", _id(), nullable=True),
        sa.Column("end_user_id", sa.String(length=200), nullable=True),
        sa.Column("created_by_key_id", sa.BigInteger(), nullable=True),
        sa.Column("collections", _json(), nullable=False),
        sa.Column("title", sa.String(length=500), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("message_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_agent_used", sa.String(length=200), nullable=True),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("active_message_id", sa.BigInteger(), nullable=True),
        sa.Column("metadata", _json(), nullable=False),
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["owner_user_id"], ["users.id"], name=op.f("fk_conversations_owner_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_conversations")),
    )
    op.create_index("ix_conversations_owner_updated", "conversations", ["owner_user_id", "updated_at"])
    op.create_index("ix_conversations_end_user_id", "conversations", ["end_user_id"])
    op.create_index("ix_conversations_created_by_key_id", "conversations", ["created_by_key_id"])
    op.create_index("ix_conversations_deleted_at", "conversations", ["deleted_at"])
    op.create_index("ix_conversations_updated_at", "conversations", ["updated_at"])
    op.create_table(
        "messages",
        sa.Column("id", _id(), nullable=False),
        sa.Column("conversation_id", sa.String(length=26), nullable=False),
        sa.Column("parent_id", _id(), nullable=True),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("agent_used", sa.String(length=200), nullable=True),
        sa.Column("routing_info", _json(), nullable=False),
        sa.Column("references", _json(), nullable=False),
        sa.Column("token_count", sa.Integer(), nullable=False),
        sa.Column("prompt_tokens", sa.Integer(), nullable=True),
        sa.Column("completion_tokens", sa.Integer(), nullable=True),
        sa.Column("latency_ms", sa.Float(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("metadata", _json(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.CheckConstraint("role IN ('user', 'assistant', 'system', 'tool')", name=op.f("ck_messages_role_known")),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name=op.f("fk_messages_conversation_id_conversations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["parent_id"], ["messages.id"], name=op.f("fk_messages_parent_id_messages"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_messages")),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_messages_conversation_id_id", "messages", ["conversation_id", "id"])
    op.create_index("ix_messages_parent_id", "messages", ["parent_id"])
    op.create_index("ix_messages_created_at", "messages", ["created_at"])
    op.create_table(
        "message_feedback",
        sa.Column("id", _id(), nullable=False),
        sa.Column("message_id", _id(), nullable=False),
        sa.Column("rating", sa.Integer(), nullable=False),
        sa.Column("scale", sa.String(length=8), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.CheckConstraint("source IN ('end_user', 'reviewer')", name=op.f("ck_message_feedback_source_known")),
        sa.CheckConstraint("scale IN ('thumbs', 'stars')", name=op.f("ck_message_feedback_scale_known")),
        sa.CheckConstraint(
            "(scale = 'thumbs' AND rating IN (-1, 1)) OR (scale = 'stars' AND rating BETWEEN 1 AND 5)",
            name=op.f("ck_message_feedback_rating_in_scale"),
        ),
        sa.ForeignKeyConstraint(
            ["message_id"], ["messages.id"], name=op.f("fk_message_feedback_message_id_messages"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_message_feedback")),
        sa.UniqueConstraint("message_id", "source", name="uq_message_feedback_message_source"),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "message_lexemes",
        sa.Column("message_id", _id(), autoincrement=False, nullable=False),
        sa.Column("conversation_id", sa.String(length=26), nullable=False),
        sa.Column("terms", sa.Text(), nullable=False),
        sa.Column("term_count", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["message_id"], ["messages.id"], name=op.f("fk_message_lexemes_message_id_messages"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("message_id", name=op.f("pk_message_lexemes")),
    )
    op.create_index("ix_message_lexemes_conversation_id", "message_lexemes", ["conversation_id"])
    statements = SQLITE_FTS if op.get_bind().dialect.name == "sqlite" else POSTGRES_FTS
    for statement in statements:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for trigger in ("message_lexemes_fts_ai", "message_lexemes_fts_ad", "message_lexemes_fts_au"):
            op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
        op.execute("DROP TABLE IF EXISTS message_lexemes_vocab")
        op.execute("DROP TABLE IF EXISTS message_lexemes_fts")
    op.drop_index("ix_message_lexemes_conversation_id", table_name="message_lexemes")
    op.drop_table("message_lexemes")
    op.drop_table("message_feedback")
    op.drop_index("ix_messages_created_at", table_name="messages")
    op.drop_index("ix_messages_parent_id", table_name="messages")
    op.drop_index("ix_messages_conversation_id_id", table_name="messages")
    op.drop_table("messages")
    op.drop_index("ix_conversations_updated_at", table_name="conversations")
    op.drop_index("ix_conversations_deleted_at", table_name="conversations")
    op.drop_index("ix_conversations_created_by_key_id", table_name="conversations")
    op.drop_index("ix_conversations_end_user_id", table_name="conversations")
    op.drop_index("ix_conversations_owner_updated", table_name="conversations")
    op.drop_table("conversations")
