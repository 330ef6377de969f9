"""What `store.analytics.summary` reports: the query log, users' feedback and the chunks that help."""

from __future__ import annotations

from ragstore.schemas.core import Model

__all__ = [
    "AnalyticsSummary",
    "ChunkUsage",
    "FeedbackTotals",
    "LatencySummary",
    "QueryCount",
    "QueryTotals",
    "TopChunks",
    "TopQuery",
]


class LatencySummary(Model):
    p50: float | None
    p95: float | None
    p99: float | None
    mean: float | None


class QueryTotals(Model):
    total: int
    by_mode: dict[str, int]
    cache_hits: int
    cache_hit_rate: float | None
    zero_results: int
    filtered: int
    latency_ms: LatencySummary


class QueryCount(Model):
    query: str
    count: int


class TopQuery(QueryCount):
    avg_results: float


class FeedbackTotals(Model):
    total: int
    relevant: int
    irrelevant: int
    precision: float | None


class ChunkUsage(Model):
    chunk_id: int
    document_id: int
    title: str
    returned: int
    relevant: int
    irrelevant: int


class TopChunks(Model):
    most_returned: list[ChunkUsage]
    most_relevant: list[ChunkUsage]
    most_irrelevant: list[ChunkUsage]


class AnalyticsSummary(Model):
    collection: str
    days: int
    since: str
    queries: QueryTotals
    top_queries: list[TopQuery]
    zero_result_queries: list[QueryCount]
    feedback: FeedbackTotals
    chunks: TopChunks
