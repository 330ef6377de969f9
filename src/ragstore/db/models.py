"""The relational schema: the system of record.

Everything the vector index holds can be rebuilt from these rows (chunks and their embeddings), which is
why backups, consistency checks and backend migrations never need an embedding call.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy import text as sql_text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

__all__ = [
    "BackupRun",
    "Base",
    "ChunkAnalytics",
    "ChunkLexeme",
    "ChunkStatus",
    "Collection",
    "CollectionStatus",
    "ConsistencyReport",
    "Document",
    "DocumentChunk",
    "DocumentStatus",
    "Embedding",
    "EmbeddingUsage",
    "Job",
    "LexicalIndexState",
    "MigrationChecksum",
    "OpKind",
    "OpState",
    "QueryLog",
    "RunRecord",
    "RunState",
    "SearchFeedback",
    "StoreState",
    "SyncMarker",
    "SyncOperation",
    "utcnow",
]

# Stable constraint names, so Alembic migrations can drop and alter them on every dialect.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


# BigInteger ids that are still SQLite rowid aliases (SQLite only autoincrements INTEGER PRIMARY KEY).
def utcnow() -> datetime:
    return datetime.now(UTC)


BigId = BigInteger().with_variant(Integer(), "sqlite")
# JSONB on PostgreSQL (indexable, compact), plain JSON text elsewhere.
JsonDoc = JSON().with_variant(JSONB(), "postgresql")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class TimestampMixin:
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, server_default=func.now(), onupdate=utcnow
    )


# Row statuses. StrEnums, so a member equals (and is stored as) its value string: the values are the
# schema's, unchanged since migration 0001. Which combination a search may show is db/visibility.py's rule.
class CollectionStatus(StrEnum):
    """`deleting`: hidden at once by a drop (its name freed); the applier removes it once the index has."""

    ACTIVE = "active"
    DELETING = "deleting"


class DocumentStatus(StrEnum):
    """`deleting`: hidden at once by a delete or a replacement; the applier removes the row after its chunks."""

    ACTIVE = "active"
    DELETING = "deleting"


class ChunkStatus(StrEnum):
    """The outbox's view of one chunk: written `pending`, `indexed` once the vector index confirmed it,
    `deleting` while its removal is queued."""

    PENDING = "pending"
    INDEXED = "indexed"
    DELETING = "deleting"


class RunState(StrEnum):
    """How a run of the run ledger (db/runs.py) stands: one set for backups, checks and maintenance."""

    RUNNING = "running"
    COMPLETE = "complete"
    FAILED = "failed"
    INTERRUPTED = "interrupted"  # left running by a process that stopped


class OpKind:
    UPSERT = "upsert"
    DELETE = "delete"
    DROP_COLLECTION = "drop_collection"


class OpState:
    PENDING = "pending"
    DONE = "done"
    DEAD = "dead"


class Collection(TimestampMixin, Base):
    __tablename__ = "collections"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    embedding_model: Mapped[str] = mapped_column(String(200))
    dimension: Mapped[int] = mapped_column(Integer)
    metric: Mapped[str] = mapped_column(String(16), default="cosine")
    settings: Mapped[dict[str, Any]] = mapped_column(JsonDoc, default=dict)
    status: Mapped[str] = mapped_column(String(16), default=CollectionStatus.ACTIVE)
    # Bumped by every write; search caches key on it so a write invalidates results at once.
    write_version: Mapped[int] = mapped_column(BigInteger, default=0)

    documents: Mapped[list[Document]] = relationship(
        back_populates="collection", cascade="all, delete-orphan", passive_deletes=True
    )


class Document(TimestampMixin, Base):
    __tablename__ = "documents"
    __table_args__ = (
        # Not unique (migration 0011): `--keep-duplicates` stores one content under several sources.
        Index("ix_documents_collection_content_hash", "collection_id", "content_hash"),
        Index("ix_documents_collection_source", "collection_id", "source_uri"),
        Index("ix_documents_collection_status", "collection_id", "status"),
        # One active document per source (migration 0009): concurrent replacements of a source can never
        # leave two; ingest serialises them and re-reads the active one inside its transaction.
        Index(
            "uq_documents_active_source",
            "collection_id",
            "source_uri",
            unique=True,
            sqlite_where=sql_text("status = 'active'"),
            postgresql_where=sql_text("status = 'active'"),
        ),
        # PostgreSQL only: metadata equality filters compile to JSONB containment (@>), which this serves.
        Index(
            "ix_documents_metadata_gin",
            "metadata",
            postgresql_using="gin",
            postgresql_ops={"metadata": "jsonb_path_ops"},
        ).ddl_if(dialect="postgresql"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    collection_id: Mapped[int] = mapped_column(ForeignKey("collections.id", ondelete="CASCADE"))
    source_uri: Mapped[str] = mapped_column(String(2048))
    title: Mapped[str] = mapped_column(String(1024), default="")
    mime_type: Mapped[str] = mapped_column(String(128))
    size_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JsonDoc, default=dict)
    content_hash: Mapped[str] = mapped_column(String(64))
    encoding: Mapped[str | None] = mapped_column(String(32), nullable=True)  # a file's text encoding
    source_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)  # SHA-256 of its raw bytes
    # active: searchable once indexed; deleting: its chunks are leaving the index.
    status: Mapped[str] = mapped_column(String(16), default=DocumentStatus.ACTIVE)
    chunk_count: Mapped[int] = mapped_column(Integer, default=0)

    collection: Mapped[Collection] = relationship(back_populates="documents")
    chunks: Mapped[list[DocumentChunk]] = relationship(
        back_populates="document", cascade="all, delete-orphan", passive_deletes=True, order_by="DocumentChunk.ordinal"
    )


class DocumentChunk(TimestampMixin, Base):
    __tablename__ = "document_chunks"
    __table_args__ = (
        UniqueConstraint("document_id", "ordinal", name="uq_document_chunks_document_ordinal"),
        Index("ix_document_chunks_collection_status", "collection_id", "status"),
        Index("ix_document_chunks_content_hash", "content_hash"),
        # A filter lists the visible chunks of the documents it keeps from this index alone (migration 0015):
        # reading each chunk row for its status cost as much as the rest of the listing.
        Index("ix_document_chunks_document_status", "document_id", "status", "id"),
        # Chunk ids are vector keys: never reuse one, or replaying an old outbox delete could hit a new chunk.
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    document_id: Mapped[int] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"))
    # Denormalised from the document: the hot queries (indexed chunks of a collection) need no join.
    collection_id: Mapped[int] = mapped_column(ForeignKey("collections.id", ondelete="CASCADE"))
    ordinal: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    token_count: Mapped[int] = mapped_column(Integer)
    content_hash: Mapped[str] = mapped_column(String(64))
    # The key of this chunk's vector in every VectorIndex; equal to `id`, kept explicit for other backends.
    vector_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    status: Mapped[str] = mapped_column(String(16), default=ChunkStatus.PENDING)

    document: Mapped[Document] = relationship(back_populates="chunks")


class Embedding(Base):
    """Vector of a text under a model: the persistent embedding cache and the source of every rebuild."""

    __tablename__ = "embeddings"

    model: Mapped[str] = mapped_column(String(200), primary_key=True)
    content_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    dimension: Mapped[int] = mapped_column(Integer)
    vector: Mapped[bytes] = mapped_column(LargeBinary)  # little-endian float32
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, server_default=func.now())


class EmbeddingUsage(Base):
    """One row per call to an embedding backend: what it cost, so a bill is never a surprise."""

    __tablename__ = "embedding_usage"
    __table_args__ = (Index("ix_embedding_usage_created_at", "created_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    backend: Mapped[str] = mapped_column(String(32))
    model: Mapped[str] = mapped_column(String(200))
    inputs: Mapped[int] = mapped_column(Integer)
    tokens: Mapped[int] = mapped_column(Integer)
    cost_usd: Mapped[float] = mapped_column(Float, default=0.0)
    duration_ms: Mapped[float] = mapped_column(Float)
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, server_default=func.now())


class SyncOperation(TimestampMixin, Base):
    """The outbox: one row per change the vector index must apply; `id` is the apply order."""

    __tablename__ = "sync_operations"
    __table_args__ = (
        Index("ix_sync_operations_state_next", "state", "next_attempt_at"),
        Index("ix_sync_operations_collection_id", "collection_id", "id"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    collection_id: Mapped[int] = mapped_column(BigInteger)  # no FK: a drop must outlive its collection
    kind: Mapped[str] = mapped_column(String(32))
    chunk_ids: Mapped[list[int]] = mapped_column(JsonDoc, default=list)
    state: Mapped[str] = mapped_column(String(16), default=OpState.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    next_attempt_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, server_default=func.now()
    )
    applied_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # The process applying it now; a lapsed lease lets another process take the operation over.
    lease_owner: Mapped[str | None] = mapped_column(String(128), nullable=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class SyncMarker(Base):
    """A named number every process agrees on (e.g. `outbox_pruned_through`)."""

    __tablename__ = "sync_markers"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow, server_default=func.now()
    )


class Job(TimestampMixin, Base):
    """A unit of background work, claimed under a lease so that a dead worker's job is taken over."""

    __tablename__ = "job_queue"
    __table_args__ = (Index("ix_job_queue_state_run_after", "state", "run_after", "priority"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    kind: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JsonDoc, default=dict)
    state: Mapped[str] = mapped_column(String(16), default="queued")
    priority: Mapped[int] = mapped_column(Integer, default=0)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=5)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    result: Mapped[dict[str, Any] | None] = mapped_column(JsonDoc, nullable=True)
    run_after: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, server_default=func.now())
    lease_owner: Mapped[str | None] = mapped_column(String(128), nullable=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class MigrationChecksum(Base):
    """SHA-256 of each applied Alembic revision file: an edited applied revision is refused at start."""

    __tablename__ = "ragstore_migration_checksums"

    revision: Mapped[str] = mapped_column(String(64), primary_key=True)
    filename: Mapped[str] = mapped_column(String(255))
    sha256: Mapped[str] = mapped_column(String(64))
    applied_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, server_default=func.now())


class ChunkLexeme(Base):
    """The analysed terms of one chunk, space-separated: what the lexical index is built from.

    Written in the same transaction as the chunk and deleted with it (the foreign key cascades), so the
    lexical index cannot drift from the chunks. The index itself is dialect-specific and lives in migration
    0005: an external-content FTS5 table kept by triggers on SQLite, a stored `tsvector` column with a GIN
    index on PostgreSQL (`tsv`, which the models leave out: see `migrations.DATABASE_ONLY`).
    """

    __tablename__ = "chunk_lexemes"
    __table_args__ = (Index("ix_chunk_lexemes_collection_id", "collection_id"),)

    # On SQLite an INTEGER PRIMARY KEY is the rowid, which the FTS5 table uses as its content rowid.
    chunk_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("document_chunks.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    collection_id: Mapped[int] = mapped_column(BigInteger)
    terms: Mapped[str] = mapped_column(Text)
    term_count: Mapped[int] = mapped_column(Integer)


class LexicalIndexState(Base):
    """Which analyzer (name and version) built a collection's lexical terms.

    Queries must be analysed the way the chunks were, and terms of two analyzers must never mix: ingest and
    search use the recorded analyzer, and a store configured with another one re-indexes at start.
    """

    __tablename__ = "lexical_indexes"

    collection_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("collections.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    analyzer: Mapped[str] = mapped_column(String(32))
    analyzer_version: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow, server_default=func.now()
    )


class SearchFeedback(Base):
    """A user's judgement of one search result; it outlives the chunk (no foreign key to it)."""

    __tablename__ = "search_feedback"
    __table_args__ = (
        Index("ix_search_feedback_collection_created", "collection_id", "created_at"),
        Index("ix_search_feedback_chunk_id", "chunk_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    collection_id: Mapped[int] = mapped_column(ForeignKey("collections.id", ondelete="CASCADE"))
    query: Mapped[str] = mapped_column(Text)
    chunk_id: Mapped[int] = mapped_column(BigInteger)
    document_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    relevant: Mapped[bool] = mapped_column(Boolean)
    mode: Mapped[str | None] = mapped_column(String(16), nullable=True)
    comment: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, server_default=func.now())


class QueryLog(Base):
    """One row per search: what was asked, how, how fast, how many results, whether the cache answered."""

    __tablename__ = "query_log"
    __table_args__ = (Index("ix_query_log_collection_created", "collection_id", "created_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    collection_id: Mapped[int] = mapped_column(ForeignKey("collections.id", ondelete="CASCADE"))
    query: Mapped[str | None] = mapped_column(Text, nullable=True)  # None: a search by vector alone
    mode: Mapped[str] = mapped_column(String(16))
    k: Mapped[int] = mapped_column(Integer)
    result_count: Mapped[int] = mapped_column(Integer)
    latency_ms: Mapped[float] = mapped_column(Float)
    cache_hit: Mapped[bool] = mapped_column(Boolean)
    filtered: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, server_default=func.now())


class ChunkAnalytics(Base):
    """How often a chunk is returned by searches and judged relevant or not; leaves with the chunk."""

    __tablename__ = "chunk_analytics"
    __table_args__ = (Index("ix_chunk_analytics_collection_id", "collection_id"),)

    chunk_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("document_chunks.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    collection_id: Mapped[int] = mapped_column(BigInteger)
    returned_count: Mapped[int] = mapped_column(BigInteger, default=0)
    relevant_count: Mapped[int] = mapped_column(Integer, default=0)
    irrelevant_count: Mapped[int] = mapped_column(Integer, default=0)
    last_returned_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class RunRecord:
    """The columns every run-ledger table has (db/runs.py writes them); each table adds its own."""

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    # Unique: of several processes whose schedules fire at once, the one that inserts the slot runs the job.
    slot: Mapped[str | None] = mapped_column(String(64), unique=True, nullable=True)
    trigger: Mapped[str] = mapped_column(String(16))  # cli, manual, api, schedule, restore
    state: Mapped[str] = mapped_column(String(16))  # a RunState
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, server_default=func.now())
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    duration_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    details: Mapped[dict[str, Any]] = mapped_column(JsonDoc, default=dict)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)


class ConsistencyReport(RunRecord, Base):
    """One run of the consistency checker: counts by kind, the problems found and the repairs made."""

    __tablename__ = "consistency_reports"
    __table_args__ = (Index("ix_consistency_reports_started_at", "started_at"), {"sqlite_autoincrement": True})

    backend: Mapped[str] = mapped_column(String(32))
    collection: Mapped[str | None] = mapped_column(String(128), nullable=True)  # None: every collection
    repair: Mapped[bool] = mapped_column(Boolean)
    problems: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    counts: Mapped[dict[str, Any]] = mapped_column(JsonDoc, default=dict)


class BackupRun(RunRecord, Base):
    """One backup, verify, restore or prune: what was attempted, how it ended, how big and how long."""

    __tablename__ = "backup_runs"
    __table_args__ = (Index("ix_backup_runs_started_at", "started_at"), {"sqlite_autoincrement": True})

    action: Mapped[str] = mapped_column(String(16))  # backup, verify, restore, prune
    kind: Mapped[str | None] = mapped_column(String(16), nullable=True)  # full, incremental, snapshot
    backup_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    size_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)


class StoreState(Base):
    """A fact about the store every process must agree on, by key (e.g. which vector backend is active)."""

    __tablename__ = "store_state"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[dict[str, Any]] = mapped_column(JsonDoc, default=dict)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow, server_default=func.now()
    )
