"""Conversations, messages, feedback, context, message search, purge and erasure: what `store.chat` returns
and what the /v1/conversations routes take.

Inputs forbid unknown fields and bound every size, so a request that names a wrong field or sends a
megabyte title gets a 422 naming it rather than a silent drop or an unbounded row.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ragstore.schemas.core import INT64_MAX, Model, StorableJson, StorableStr, UtcTime

__all__ = [
    "MAX_COLLECTIONS_PER_CONVERSATION",
    "MAX_MESSAGE_CHARS",
    "MAX_REFERENCES",
    "ChatContext",
    "ConversationCreate",
    "ConversationDetail",
    "ConversationInfo",
    "ConversationPage",
    "ConversationUpdate",
    "ErasureReport",
    "FeedbackInfo",
    "FeedbackInput",
    "MessageCreate",
    "MessageHit",
    "MessageInfo",
    "MessageReference",
    "MessageRelexReport",
    "MessageRole",
    "MessageSearchResult",
    "PurgeReport",
    "ReferenceState",
    "ResolvedReference",
]

MessageRole = Literal["user", "assistant", "system", "tool"]
ReferenceState = Literal["current", "changed", "deleted"]
FeedbackSource = Literal["end_user", "reviewer"]
FeedbackScale = Literal["thumbs", "stars"]
MAX_MESSAGE_CHARS = 200_000
MAX_REFERENCES = 100
MAX_COLLECTIONS_PER_CONVERSATION = 32
MAX_METADATA_KEYS = 64


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MessageReference(Model):
    """A chunk an answer cited, as it was when cited: `content_hash` is the chunk text's hash at the time."""

    model_config = ConfigDict(from_attributes=True, extra="forbid")

    chunk_id: int = Field(ge=1, le=INT64_MAX)
    document_id: int = Field(ge=1, le=INT64_MAX)
    score: float | None = Field(None, ge=-1e9, le=1e9, description="The retrieval score, if any.")
    content_hash: StorableStr = Field(min_length=1, max_length=128)
    collection_id: int | None = Field(
        None, ge=1, le=INT64_MAX, description="Filled in by the store when the message is added (the chunk's)."
    )
    source_uri: StorableStr | None = Field(
        None,
        max_length=2048,
        description="Filled in by the store when the message is added: the cited document's source, by which a "
        "replacement of that document is recognised after the old version is gone.",
    )


class ConversationCreate(_Input):
    title: StorableStr = Field("", max_length=500)
    user: int | StorableStr | None = Field(
        None, description="The owning user (id or e-mail). Only an admin may name another user than the caller."
    )
    end_user_id: StorableStr | None = Field(
        None, min_length=1, max_length=200, description="An anonymous end user's id."
    )
    collections: list[StorableStr] = Field(default_factory=list, max_length=MAX_COLLECTIONS_PER_CONVERSATION)
    metadata: StorableJson = Field(default_factory=dict, max_length=MAX_METADATA_KEYS)
    expires_at: UtcTime | None = None


class ConversationUpdate(_Input):
    """A change to a conversation; `version` must be the version read, or the update is refused (409)."""

    version: int = Field(ge=1, le=INT64_MAX)
    title: StorableStr | None = Field(None, max_length=500)
    summary: StorableStr | None = Field(None, max_length=MAX_MESSAGE_CHARS)
    is_active: bool | None = None
    collections: list[StorableStr] | None = Field(None, max_length=MAX_COLLECTIONS_PER_CONVERSATION)
    metadata: StorableJson | None = Field(None, max_length=MAX_METADATA_KEYS)
    active_message_id: int | None = Field(None, ge=1, le=INT64_MAX, description="Switch to another branch.")


class ConversationInfo(Model):
    id: str
    owner_user_id: int | None = None
    end_user_id: str | None = None
    collections: list[str]
    title: str
    summary: str
    message_count: int
    last_agent_used: str | None = None
    is_active: bool
    active_message_id: int | None = None
    metadata: dict[str, Any] = Field(default_factory=dict, validation_alias="metadata_")
    version: int
    created_at: UtcTime
    updated_at: UtcTime
    expires_at: UtcTime | None = None


class ConversationPage(Model):
    """One page of a listing, newest activity first; `next_cursor` fetches the next page (None: the last)."""

    conversations: list[ConversationInfo]
    next_cursor: str | None = None


class MessageCreate(_Input):
    role: MessageRole
    content: StorableStr = Field(max_length=MAX_MESSAGE_CHARS)
    parent_id: int | None = Field(
        None, ge=1, le=INT64_MAX, description="The message this one answers or replaces; default: the active leaf."
    )
    agent_used: StorableStr | None = Field(None, max_length=200)
    routing_info: StorableJson = Field(default_factory=dict, max_length=MAX_METADATA_KEYS)
    references: list[MessageReference] = Field(default_factory=list, max_length=MAX_REFERENCES)
    prompt_tokens: int | None = Field(None, ge=0, le=INT64_MAX)
    completion_tokens: int | None = Field(None, ge=0, le=INT64_MAX)
    latency_ms: float | None = Field(None, ge=0, le=1e9)
    status: Literal["complete", "partial", "error"] = "complete"
    metadata: StorableJson = Field(default_factory=dict, max_length=MAX_METADATA_KEYS)


class MessageInfo(Model):
    id: int
    conversation_id: str
    parent_id: int | None = None
    role: MessageRole
    content: str
    agent_used: str | None = None
    routing_info: dict[str, Any] = Field(default_factory=dict)
    references: list[MessageReference] = Field(default_factory=list)
    token_count: int
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    latency_ms: float | None = None
    status: str
    metadata: dict[str, Any] = Field(default_factory=dict, validation_alias="metadata_")
    created_at: UtcTime


class ConversationDetail(Model):
    """A conversation with the messages of its active branch, oldest first (`all_branches`: every message)."""

    conversation: ConversationInfo
    messages: list[MessageInfo]
    truncated: bool = Field(False, description="Older messages were left out (the listing's limit).")


class FeedbackInput(_Input):
    rating: int = Field(ge=-1, le=5, description="thumbs: -1 or 1; stars: 1..5")
    scale: FeedbackScale = "thumbs"
    comment: StorableStr = Field("", max_length=10_000)
    source: FeedbackSource = "end_user"


class FeedbackInfo(Model):
    id: int
    message_id: int
    rating: int
    scale: FeedbackScale
    comment: str
    source: FeedbackSource
    created_at: UtcTime
    updated_at: UtcTime


class ResolvedReference(Model):
    """A citation checked against the store now: `current` (the chunk holds the same text), `changed` (it
    exists with other text, or its document was replaced), or `deleted` (the chunk or document is gone)."""

    chunk_id: int
    document_id: int
    score: float | None = None
    content_hash: str
    state: ReferenceState
    message_id: int


class ChatContext(Model):
    """What the next turn is built from: the running summary and the newest messages of the active branch
    that fit the budget (oldest first), their token total, and every citation among them resolved now."""

    conversation_id: str
    summary: str
    messages: list[MessageInfo]
    tokens: int = Field(description="The total tokens of `messages` (and the summary), at most the budget.")
    budget_tokens: int
    truncated: bool = Field(description="Older messages of the branch were left out to fit the budget.")
    references: list[ResolvedReference]
    cached: bool = False


class MessageHit(Model):
    message_id: int
    conversation_id: str
    role: MessageRole
    score: float
    highlight: str = Field(description="The matching passage, matched words wrapped in <mark></mark>.")
    created_at: UtcTime


class MessageSearchResult(Model):
    query: str
    hits: list[MessageHit]
    took_ms: float


class MessageRelexReport(Model):
    """What `chat relex` did: every message's terms analysed again with `analyzer` (name and version)."""

    messages_analysed: int
    analyzer: str


class PurgeReport(Model):
    conversations: int
    messages: int
    dry_run: bool


class ErasureReport(Model):
    """What `users erase` removed; the audit log records these counts, never the content."""

    user_id: int
    conversations: int
    messages: int
    feedback: int
    sessions: int
    keys: int
    usage_rows_scrubbed: int
