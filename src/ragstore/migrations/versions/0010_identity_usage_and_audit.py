"""identity and accounting: users, sessions, api_keys, api_key_permissions, api_usage_logs, audit_logs,
audit_checkpoints, encrypted_secrets

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04 18:30:00

Two things here are more than tables:
- `audit_logs` is append-only: triggers refuse UPDATE and DELETE on both dialects (and TRUNCATE on
  PostgreSQL). Someone with the database files can still drop the triggers; the hash chain and the signed
  checkpoints (security/audit.py) are what notices that.
- On PostgreSQL `api_usage_logs` is partitioned by month on `created_at` (so retention drops a partition
  instead of deleting millions of rows); its primary key is therefore (id, created_at). The partitions for
  this month and the next two are made here, and ahead of time by the usage retention job; a DEFAULT
  partition catches any row outside them rather than failing a request's accounting.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JsonDoc = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
NOW = sa.func.now()

SQLITE_AUDIT_TRIGGERS = (
    "CREATE TRIGGER audit_logs_no_update BEFORE UPDATE ON audit_logs "
    "BEGIN SELECT RAISE(ABORT, 'audit_logs is append-only: rows cannot be updated'); END",
    "CREATE TRIGGER audit_logs_no_delete BEFORE DELETE ON audit_logs "
    "BEGIN SELECT RAISE(ABORT, 'audit_logs is append-only: rows cannot be deleted'); END",
)
PG_AUDIT_TRIGGERS = (
    "CREATE FUNCTION ragstore_audit_logs_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
    "BEGIN RAISE EXCEPTION 'audit_logs is append-only: % refused', TG_OP USING ERRCODE = 'insufficient_privilege'; "
    "END $$",
    "CREATE TRIGGER audit_logs_no_update BEFORE UPDATE OR DELETE ON audit_logs "
    "FOR EACH ROW EXECUTE FUNCTION ragstore_audit_logs_append_only()",
    "CREATE TRIGGER audit_logs_no_truncate BEFORE TRUNCATE ON audit_logs "
    "FOR EACH STATEMENT EXECUTE FUNCTION ragstore_audit_logs_append_only()",
)


def month_partition_ddl(month: date) -> str:
    """The DDL of the usage partition holding `month` (its first day), idempotent."""
    start = month.replace(day=1)
    end = date(start.year + (start.month == 12), start.month % 12 + 1, 1)
    return (
        f"CREATE TABLE IF NOT EXISTS api_usage_logs_{start:%Y%m} PARTITION OF api_usage_logs "
        f"FOR VALUES FROM ('{start.isoformat()}') TO ('{end.isoformat()}')"
    )


def _usage_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("api_key_id", sa.BigInteger(), nullable=True),
        sa.Column("user_id", sa.BigInteger(), nullable=True),
        sa.Column("method", sa.String(8), nullable=False),
        sa.Column("route", sa.String(200), nullable=False),
        sa.Column("collection", sa.String(128), nullable=True),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("request_bytes", sa.BigInteger(), nullable=False),
        sa.Column("response_bytes", sa.BigInteger(), nullable=False),
        sa.Column("embedding_calls", sa.Integer(), nullable=False),
        sa.Column("embedding_tokens", sa.BigInteger(), nullable=False),
        sa.Column("client_address", sa.String(64), nullable=False),
    ]


def _create_usage_table(dialect: str) -> None:
    if dialect == "postgresql":
        op.create_table(
            "api_usage_logs",
            sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
            sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
            *_usage_columns(),
            sa.PrimaryKeyConstraint("id", "created_at", name=op.f("pk_api_usage_logs")),
            postgresql_partition_by="RANGE (created_at)",
        )
        today = datetime.now(UTC).date().replace(day=1)
        for ahead in range(3):
            month = date(today.year + (today.month + ahead - 1) // 12, (today.month + ahead - 1) % 12 + 1, 1)
            op.execute(month_partition_ddl(month))
        op.execute("CREATE TABLE IF NOT EXISTS api_usage_logs_default PARTITION OF api_usage_logs DEFAULT")
    else:
        op.create_table(
            "api_usage_logs",
            sa.Column("id", BigId, nullable=False),
            sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
            *_usage_columns(),
            sa.PrimaryKeyConstraint("id", name=op.f("pk_api_usage_logs")),
        )
    op.create_index("ix_api_usage_logs_created_at", "api_usage_logs", ["created_at"])
    op.create_index("ix_api_usage_logs_key_created", "api_usage_logs", ["api_key_id", "created_at"])


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.create_table(
        "users",
        sa.Column("id", BigId, nullable=False),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("display_name", sa.String(200), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("password_hash", sa.String(256), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("failed_logins", sa.Integer(), server_default="0", nullable=False),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("email", name=op.f("uq_users_email")),
    )
    op.create_table(
        "sessions",
        sa.Column("id", BigId, nullable=False),
        sa.Column("user_id", BigId, nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("user_agent", sa.String(512), nullable=False),
        sa.Column("client_address", sa.String(64), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_sessions_user_id_users"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sessions")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_sessions_token_hash")),
    )
    op.create_index("ix_sessions_user_id", "sessions", ["user_id"])
    op.create_index("ix_sessions_expires_at", "sessions", ["expires_at"])
    op.create_table(
        "api_keys",
        sa.Column("id", BigId, nullable=False),
        sa.Column("key_id", sa.String(32), nullable=False),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("owner_id", BigId, nullable=True),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("rate_limit", sa.String(64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("replaced_by", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["users.id"], name=op.f("fk_api_keys_owner_id_users"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("key_id", name=op.f("uq_api_keys_key_id")),
    )
    op.create_index("ix_api_keys_owner_id", "api_keys", ["owner_id"])
    op.create_table(
        "api_key_permissions",
        sa.Column("id", BigId, nullable=False),
        sa.Column("api_key_id", BigId, nullable=False),
        sa.Column("collection", sa.String(128), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
        sa.ForeignKeyConstraint(
            ["api_key_id"],
            ["api_keys.id"],
            name=op.f("fk_api_key_permissions_api_key_id_api_keys"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_key_permissions")),
        sa.UniqueConstraint("api_key_id", "collection", name="uq_api_key_permissions_key_collection"),
    )
    _create_usage_table(dialect)
    op.create_table(
        "audit_logs",
        sa.Column("sequence", BigId, autoincrement=False, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("target", sa.String(500), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("client_address", sa.String(64), nullable=False),
        sa.Column("details", JsonDoc, nullable=False),
        sa.Column("previous_hash", sa.String(64), nullable=False),
        sa.Column("row_hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("sequence", name=op.f("pk_audit_logs")),
        sa.UniqueConstraint("row_hash", name=op.f("uq_audit_logs_row_hash")),
    )
    op.create_index("ix_audit_logs_created_at", "audit_logs", ["created_at"])
    op.create_index("ix_audit_logs_actor", "audit_logs", ["actor"])
    op.create_index("ix_audit_logs_action", "audit_logs", ["action"])
    for statement in PG_AUDIT_TRIGGERS if dialect == "postgresql" else SQLITE_AUDIT_TRIGGERS:
        op.execute(statement)
    op.create_table(
        "audit_checkpoints",
        sa.Column("id", BigId, nullable=False),
        sa.Column("sequence", sa.BigInteger(), nullable=False),
        sa.Column("head_hash", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("previous_signature", sa.String(200), nullable=False),
        sa.Column("public_key", sa.String(100), nullable=False),
        sa.Column("signature", sa.String(200), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_checkpoints")),
    )
    op.create_table(
        "encrypted_secrets",
        sa.Column("id", BigId, nullable=False),
        sa.Column("scope", sa.String(128), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("key_id", sa.String(16), nullable=False),
        sa.Column("nonce", sa.LargeBinary(), nullable=False),
        sa.Column("ciphertext", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_encrypted_secrets")),
        sa.UniqueConstraint("scope", "name", name="uq_encrypted_secrets_scope_name"),
    )


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.drop_table("encrypted_secrets")
    op.drop_table("audit_checkpoints")
    op.drop_table("audit_logs")  # its triggers go with it
    if dialect == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS ragstore_audit_logs_append_only()")
    op.drop_index("ix_api_usage_logs_key_created", table_name="api_usage_logs")
    op.drop_index("ix_api_usage_logs_created_at", table_name="api_usage_logs")
    op.drop_table("api_usage_logs")  # on PostgreSQL its partitions go with it
    op.drop_table("api_key_permissions")
    op.drop_index("ix_api_keys_owner_id", table_name="api_keys")
    op.drop_table("api_keys")
    op.drop_index("ix_sessions_expires_at", table_name="sessions")
    op.drop_index("ix_sessions_user_id", table_name="sessions")
    op.drop_table("sessions")
    op.drop_table("users")
