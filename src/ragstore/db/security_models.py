"""The tables of identity and accounting: users, sessions, API keys and their permissions, usage, audit.

Kept beside `models.py` (same `Base`, same metadata) so that neither file outgrows one screenful of
concerns. Secrets never appear here in plain text: keys and refresh tokens are stored as HMACs, passwords as
argon2id hashes, and user secrets (`encrypted_secrets`) as AES-GCM ciphertext.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
    func,
)
from sqlalchemy.orm import Mapped, mapped_column

from ragstore.db.models import Base, BigId, JsonDoc, utcnow

__all__ = [
    "ApiKey",
    "ApiKeyPermission",
    "ApiUsageLog",
    "AuditCheckpoint",
    "AuditLog",
    "EncryptedSecret",
    "User",
    "UserSession",
]


class User(Base):
    """A person who logs in (the admin page, a chat front end). `role` is what a session of theirs may do."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)  # stored lower-cased: unique without case
    display_name: Mapped[str] = mapped_column(String(200), default="")
    role: Mapped[str] = mapped_column(String(16))  # a security.principal.Role
    password_hash: Mapped[str | None] = mapped_column(String(256), nullable=True)  # argon2id; None: cannot log in
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    locked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow, server_default=func.now()
    )


class UserSession(Base):
    """A login: the HMAC of its refresh token, until when it lasts, and who it was opened from."""

    __tablename__ = "sessions"
    __table_args__ = (Index("ix_sessions_user_id", "user_id"), Index("ix_sessions_expires_at", "expires_at"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, server_default=func.now())
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    user_agent: Mapped[str] = mapped_column(String(512), default="")
    client_address: Mapped[str] = mapped_column(String(64), default="")


class ApiKey(Base):
    """A key `rsk_<key_id>_<secret><checksum>`: only its id and the HMAC of its secret are kept."""

    __tablename__ = "api_keys"
    __table_args__ = (Index("ix_api_keys_owner_id", "owner_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    key_id: Mapped[str] = mapped_column(String(32), unique=True)  # the public part, in the key's text
    secret_hash: Mapped[str] = mapped_column(String(64))  # hex HMAC-SHA256 of the secret under API_KEY_SALT
    name: Mapped[str] = mapped_column(String(200))
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    created_by: Mapped[str] = mapped_column(String(200), default="")  # the actor that created it
    rate_limit: Mapped[str | None] = mapped_column(String(64), nullable=True)  # overrides the role's limit
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, server_default=func.now())
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    replaced_by: Mapped[int | None] = mapped_column(BigInteger, nullable=True)  # set by a rotation


class ApiKeyPermission(Base):
    """One grant: `role` on one collection (by name) or on every collection (`*`). No row, no access."""

    __tablename__ = "api_key_permissions"
    __table_args__ = (UniqueConstraint("api_key_id", "collection", name="uq_api_key_permissions_key_collection"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    api_key_id: Mapped[int] = mapped_column(ForeignKey("api_keys.id", ondelete="CASCADE"))
    collection: Mapped[str] = mapped_column(String(128))  # a collection name, or "*"
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, server_default=func.now())


class ApiUsageLog(Base):
    """One HTTP request: who, which route, what it cost. On PostgreSQL the table is partitioned by month
    (migration 0010), so its primary key there is (id, created_at); the model names `id` alone, which is
    all the buffered writer and the summaries need."""

    __tablename__ = "api_usage_logs"
    __table_args__ = (
        Index("ix_api_usage_logs_created_at", "created_at"),
        Index("ix_api_usage_logs_key_created", "api_key_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    api_key_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    user_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    method: Mapped[str] = mapped_column(String(8))
    route: Mapped[str] = mapped_column(String(200))  # the route template, never the raw path
    collection: Mapped[str | None] = mapped_column(String(128), nullable=True)
    status: Mapped[int] = mapped_column(Integer)
    latency_ms: Mapped[float] = mapped_column(Float)
    request_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    response_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    embedding_calls: Mapped[int] = mapped_column(Integer, default=0)
    embedding_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    client_address: Mapped[str] = mapped_column(String(64), default="")


class AuditLog(Base):
    """One security-relevant or destructive action, hash-chained to the one before (security/audit.py).

    Triggers (migration 0010) refuse UPDATE and DELETE; `sequence` is gapless and `row_hash` covers the
    canonical JSON of every other column plus `previous_hash`, so an edit, a deletion, an insertion or a
    reordering breaks the chain at its first row.
    """

    __tablename__ = "audit_logs"
    __table_args__ = (
        Index("ix_audit_logs_created_at", "created_at"),
        Index("ix_audit_logs_actor", "actor"),
        Index("ix_audit_logs_action", "action"),
    )

    sequence: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    actor: Mapped[str] = mapped_column(String(200))  # key:<key id>, user:<id>, cli:<os user>, system, anonymous
    action: Mapped[str] = mapped_column(String(64))  # e.g. key.create, collection.delete, login.failed
    target: Mapped[str] = mapped_column(String(500), default="")
    outcome: Mapped[str] = mapped_column(String(16))  # success, failure, denied
    request_id: Mapped[str] = mapped_column(String(64), default="")
    client_address: Mapped[str] = mapped_column(String(64), default="")
    details: Mapped[dict[str, Any]] = mapped_column(JsonDoc, default=dict)
    previous_hash: Mapped[str] = mapped_column(String(64))
    row_hash: Mapped[str] = mapped_column(String(64), unique=True)


class AuditCheckpoint(Base):
    """A signed statement "the chain had this head at this sequence at this time", chained to the previous
    checkpoint, so rows cut off the tail after a checkpoint are noticed (and a backup carries the proof)."""

    __tablename__ = "audit_checkpoints"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    sequence: Mapped[int] = mapped_column(BigInteger)  # the last audit row covered (0: an empty log)
    head_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    previous_signature: Mapped[str] = mapped_column(String(200), default="")
    public_key: Mapped[str] = mapped_column(String(100))  # hex Ed25519 public key that signed it
    signature: Mapped[str] = mapped_column(String(200))  # hex Ed25519 signature over the canonical JSON


class EncryptedSecret(Base):
    """A secret ragstore keeps for its users (an MCP connection's credentials, a collection's OpenAI key),
    AES-GCM encrypted under ENCRYPTION_KEY; `key_id` names the key that sealed it, for rotation."""

    __tablename__ = "encrypted_secrets"
    __table_args__ = (UniqueConstraint("scope", "name", name="uq_encrypted_secrets_scope_name"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    scope: Mapped[str] = mapped_column(String(128))  # who it belongs to, e.g. "collection:docs", "mcp:3"
    name: Mapped[str] = mapped_column(String(128))
    key_id: Mapped[str] = mapped_column(String(16))  # first hex digits of SHA-256 of the key
    nonce: Mapped[bytes] = mapped_column(LargeBinary)
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow, server_default=func.now()
    )
