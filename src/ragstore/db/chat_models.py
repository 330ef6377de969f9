"""The tables of a chat service's conversations: conversations, messages, feedback, and the messages' terms.

Kept beside `models.py` (same `Base`, same metadata). A conversation's id is a ULID (sortable by creation
time, not guessable from its neighbours: it appears in URLs); a message's id is an integer, because the
full-text index over messages (FTS5 on SQLite) addresses rows by integer rowid.

Branching: every message names its `parent_id` (None for the first). An edit or a regeneration adds a
sibling, so a conversation is a tree; `conversations.active_message_id` is the leaf of the branch the user is
on, and the context of the next turn is the path from that leaf to the root.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.orm import Mapped, mapped_column

from ragstore.db.models import Base, BigId, JsonDoc, utcnow

__all__ = ["MESSAGE_ROLES", "Conversation", "Message", "MessageFeedback", "MessageLexeme"]

MESSAGE_ROLES = ("user", "assistant", "system", "tool")
FEEDBACK_SOURCES = ("end_user", "reviewer")


class Conversation(Base):
    """One chat: who owns it, which collections it searches, its running summary, and where its active branch
    ends. `deleted_at` set means soft-deleted: every read treats the row as absent until a purge removes it."""

    __tablename__ = "conversations"
    __table_args__ = (
        Index("ix_conversations_owner_updated", "owner_user_id", "updated_at"),
        Index("ix_conversations_end_user_id", "end_user_id"),
        Index("ix_conversations_created_by_key_id", "created_by_key_id"),
        Index("ix_conversations_deleted_at", "deleted_at"),
        Index("ix_conversations_updated_at", "updated_at"),
    )

    id: Mapped[str] = mapped_column(String(26), primary_key=True)  # a ULID
    owner_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=True)
    end_user_id: Mapped[str | None] = mapped_column(String(200), nullable=True)  # an anonymous end user's id
    created_by_key_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)  # api_keys.id that made it
    collections: Mapped[list[str]] = mapped_column(JsonDoc, default=list)  # the collections it searches
    title: Mapped[str] = mapped_column(String(500), default="")
    summary: Mapped[str] = mapped_column(Text, default="")
    message_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    last_agent_used: Mapped[str | None] = mapped_column(String(200), nullable=True)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    active_message_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)  # the active branch's leaf
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JsonDoc, default=dict)
    version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")  # optimistic concurrency
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, server_default=func.now())
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class Message(Base):
    """One turn. `references` are the chunks an answer cited, each with the chunk text's content hash at the
    time, so a later read can tell a citation that still holds from one whose chunk changed or went away."""

    __tablename__ = "messages"
    __table_args__ = (
        CheckConstraint("role IN ('user', 'assistant', 'system', 'tool')", name="role_known"),
        Index("ix_messages_conversation_id_id", "conversation_id", "id"),
        Index("ix_messages_parent_id", "parent_id"),
        Index("ix_messages_created_at", "created_at"),
        {"sqlite_autoincrement": True},  # a message id is never reused: search results and links name it
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    conversation_id: Mapped[str] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"), nullable=True)
    role: Mapped[str] = mapped_column(String(16))
    content: Mapped[str] = mapped_column(Text)
    agent_used: Mapped[str | None] = mapped_column(String(200), nullable=True)
    routing_info: Mapped[dict[str, Any]] = mapped_column(JsonDoc, default=dict)
    references: Mapped[list[dict[str, Any]]] = mapped_column(JsonDoc, default=list)
    token_count: Mapped[int] = mapped_column(Integer, default=0)  # of `content`, counted once at insert
    prompt_tokens: Mapped[int | None] = mapped_column(Integer, nullable=True)
    completion_tokens: Mapped[int | None] = mapped_column(Integer, nullable=True)
    latency_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="complete")
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JsonDoc, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, server_default=func.now())


class MessageFeedback(Base):
    """A rating of one message: thumbs (-1 or 1) or stars (1..5), from the end user or a reviewer; one per
    message and source (a second rating from the same source replaces the first)."""

    __tablename__ = "message_feedback"
    __table_args__ = (
        UniqueConstraint("message_id", "source", name="uq_message_feedback_message_source"),
        CheckConstraint("source IN ('end_user', 'reviewer')", name="source_known"),
        CheckConstraint("scale IN ('thumbs', 'stars')", name="scale_known"),
        CheckConstraint(
            "(scale = 'thumbs' AND rating IN (-1, 1)) OR (scale = 'stars' AND rating BETWEEN 1 AND 5)",
            name="rating_in_scale",
        ),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"))
    rating: Mapped[int] = mapped_column(Integer)
    scale: Mapped[str] = mapped_column(String(8))
    comment: Mapped[str] = mapped_column(Text, default="")
    source: Mapped[str] = mapped_column(String(16))
    created_by: Mapped[str] = mapped_column(String(200), default="")  # the actor who rated
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, server_default=func.now())


class MessageLexeme(Base):
    """A message's analysed terms (the documents' analyzer: kiwi or bigrams), for full-text search over
    messages. Written in the message's transaction, deleted with it; the full-text structure is in migration
    0012 (FTS5 kept by triggers on SQLite, a stored tsvector with a GIN index on PostgreSQL)."""

    __tablename__ = "message_lexemes"
    __table_args__ = (Index("ix_message_lexemes_conversation_id", "conversation_id"),)

    message_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("messages.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    conversation_id: Mapped[str] = mapped_column(String(26))
    terms: Mapped[str] = mapped_column(Text)
    term_count: Mapped[int] = mapped_column(Integer)
