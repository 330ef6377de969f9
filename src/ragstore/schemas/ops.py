"""What `store.ops` and `store.index` report: component health, the outbox, and how level the indexes are.

Health is polled by load balancers and read by people; every field is named here so that neither has to
guess which keys a component happens to send.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from ragstore.schemas.core import Model, UtcTime
from ragstore.schemas.jobs import JobProgress

__all__ = [
    "CacheHealth",
    "CollectionIndexState",
    "CollectionTuning",
    "DatabaseHealth",
    "EmbedderHealth",
    "EventsHealth",
    "HealthComponents",
    "HealthReport",
    "HealthStatus",
    "IndexStatus",
    "JobInfo",
    "LexicalState",
    "LexicalStatus",
    "OutboxCounts",
    "QueryLogHealth",
    "RateLimiterHealth",
    "RebuildReport",
    "ReembedReport",
    "RelexReport",
    "ReplicaPosition",
    "SearchHealth",
    "SyncReport",
    "SyncWorkerHealth",
    "TuningPoint",
    "TuningReport",
    "TuningState",
    "UsageHealth",
    "VectorIndexHealth",
]

HealthStatus = Literal["ok", "degraded", "down"]


class OutboxCounts(Model):
    """Outbox operations by state: pending (waiting for the index), done (applied, kept a while), dead."""

    pending: int = 0
    done: int = 0
    dead: int = 0


class SyncReport(Model):
    """What one pass over the outbox did."""

    applied: int = 0
    failed: int = 0
    dead: int = 0


class DatabaseHealth(Model):
    status: HealthStatus
    dialect: str | None = None
    revision: str | None = None
    latency_ms: float | None = None
    error: str | None = None


class ReplicaPosition(Model):
    """This process's replica of the index: the outbox position it has reached."""

    owner: str
    watermark: int


class VectorIndexHealth(Model):
    status: HealthStatus
    backend: str
    pending_operations: int
    retrying_operations: int
    last_error: str | None
    dead_operations: int
    replica: ReplicaPosition


class CacheHealth(Model):
    status: HealthStatus
    backend: str
    redis: dict[str, Any] | None  # the Redis client's own status, when REDIS_URL is set
    layers: dict[str, Any]  # hits and misses by cache layer


class EventsHealth(Model):
    status: HealthStatus
    channel: str
    subscribed: bool
    published: int
    received: int


class EmbedderHealth(Model):
    status: HealthStatus
    backend: str
    model: str


class SyncWorkerHealth(Model):
    status: HealthStatus
    last_error: str | None


class UsageHealth(Model):
    queued: int
    written: int
    dropped: int  # rows lost because the queue was full or a flush failed (never a request)
    last_error: str | None = None


class RateLimiterHealth(Model):
    """Degraded while Redis fails and each server process counts on its own (security/ratelimit.py)."""

    status: HealthStatus
    storage: str  # memory, or redis when REDIS_URL is set
    counting_in: str  # where counts go now: redis, or memory (per process) while Redis fails
    error: str | None = None
    fallbacks: int = 0
    refused: int = 0
    usage: UsageHealth | None = None


class HealthComponents(Model):
    database: DatabaseHealth
    vector_index: VectorIndexHealth
    cache: CacheHealth
    embedder: EmbedderHealth
    events: EventsHealth | None = None  # only with Redis
    sync_worker: SyncWorkerHealth | None = None  # only while this process runs one
    rate_limiter: RateLimiterHealth | None = None  # only once this process limits requests (a server)

    def statuses(self) -> list[HealthStatus]:
        parts = [
            self.database,
            self.vector_index,
            self.cache,
            self.embedder,
            self.events,
            self.sync_worker,
            self.rate_limiter,
        ]
        return [p.status for p in parts if p is not None]


class QueryLogHealth(Model):
    enabled: bool
    written: int
    dropped: int


class SearchHealth(Model):
    searches: int
    dropped_hits: int
    orphan_hits: int
    lexical_backend: str
    analyzer: str
    query_log: QueryLogHealth


class HealthReport(Model):
    """`status` is ok, degraded (serving, something behind) or down."""

    status: HealthStatus
    components: HealthComponents
    search: SearchHealth

    def to_json(self) -> dict[str, Any]:
        """The HTTP body: components that do not run in this process are left out, not sent as null."""
        body = self.model_dump(mode="json")
        body["components"] = {k: v for k, v in body["components"].items() if v is not None}
        return body


class LexicalState(Model):
    collection: str
    analyzer: str | None
    version: str | None
    current: bool
    configured: str


class LexicalStatus(Model):
    backend: str
    collections: list[LexicalState]


class CollectionIndexState(Model):
    name: str
    indexed_chunks: int
    chunks: int


class IndexStatus(Model):
    backend: str
    outbox: OutboxCounts
    lexical: LexicalStatus
    collections: list[CollectionIndexState]


class ReembedReport(Model):
    embedded: int
    queued: int


class RebuildReport(Model):
    """What `store.index.rebuild` did: vectors written per collection, from the embeddings SQL holds."""

    vectors: dict[str, int]


class RelexReport(Model):
    """What `store.index.relex` did: chunks analysed again per collection, with the configured analyzer."""

    chunks_analysed: dict[str, int]


# `tuned`: measured by this call; `current`: measured before, kept; `untuned`: never measured (it searches at
# RAGSTORE_HNSW_EF_SEARCH); `exact`: searched by brute force, nothing to tune; `not_tunable`: the backend
# exposes no search breadth (Chroma).
TuningState = Literal["tuned", "current", "untuned", "exact", "not_tunable"]


class TuningPoint(Model):
    ef: int
    recall: float = Field(description="recall@10 of the sampled queries at this breadth")
    stderr: float = Field(0.0, description="the standard error of that recall")
    p50_us: float = Field(description="median latency of one search at this breadth, in microseconds")


class CollectionTuning(Model):
    """One collection's search breadth (HNSW ef_search) and the measurement it was chosen from."""

    collection: str
    state: TuningState
    vectors: int = Field(description="vectors in the index now (`tuned`: when measured)")
    ef_search: int | None = Field(description="the breadth its searches use; None when exact or not tunable")
    target_recall: float
    recall: float | None = Field(None, description="recall@10 at ef_search on the sample, when measured")
    met: bool | None = Field(None, description="False: no breadth of the ladder reached the target")
    vectors_measured: int | None = None
    sample: int = 0
    curve: list[TuningPoint] = Field(default_factory=list, description="by breadth, up to the chosen one")
    tuned_at: UtcTime | None = None
    seconds: float | None = Field(None, description="how long the measurement took")
    due: str | None = Field(None, description="why it is due for measuring again; None when it is not")


class TuningReport(Model):
    """What `store.index.tune` measured (or, for `store.index.tuning`, what is stored)."""

    backend: str
    target_recall: float
    collections: list[CollectionTuning]


class JobInfo(Model):
    """One job of the queue that `ragstore worker` processes drain."""

    id: int
    kind: str
    state: str
    attempts: int
    lease_owner: str | None
    lease_expires_at: UtcTime | None
    last_error: str | None
    result: dict[str, Any] | None
    created_at: UtcTime | None
    collection: str | None = None  # the collection the job works on (its payload's), when it names one
    progress: JobProgress | None = None  # typed progress (ingest jobs); `result` keeps the handler's own keys


class HealthSnapshot(Model):
    """What health was at one moment (a row of `system_health`, taken on RAGSTORE_HEALTH_SNAPSHOT_SCHEDULE)."""

    taken_at: UtcTime
    status: HealthStatus
    components: dict[str, dict[str, Any]] = Field(description="Each component's status (and latency, if timed).")
    database_latency_ms: float | None = None
    outbox_pending: int
    outbox_dead: int
    jobs_queued: int
    jobs_dead: int
    database_bytes: int
    disk_free_bytes: int | None = Field(None, description="Free space under the data directory.")
    rss_bytes: int | None = Field(None, description="Resident memory of the process that took the snapshot.")
    cache_hit_ratios: dict[str, float | None] = Field(
        description="Per cache layer, hits over look-ups in the process that took it (None: no look-up yet)."
    )
    requests_total: int | None = Field(
        None, description="HTTP requests answered since the server started, summed over its processes."
    )
    request_errors_total: int | None = Field(None, description="Of those, answered with a 5xx status.")
    request_seconds_total: float | None = Field(None, description="The seconds those requests took, summed.")


class HealthHistory(Model):
    hours: int
    snapshots: list[HealthSnapshot] = Field(description="Oldest first.")
