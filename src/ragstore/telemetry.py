"""The event metrics every layer counts (prometheus-client): defined here, below every feature, so the
database engine, the search service and the HTTP middleware can each count what happens in them without
importing the operations layer that serves `/metrics` (ops/metrics.py, which also explains the two kinds
of metric and the multiprocess mode).

Every label is bounded: route templates, status classes, modes, backends, dialects, statement kinds; never
a key, a user, a query, a collection or a document.
"""

from __future__ import annotations

import os

# prometheus-client reads this once, at its first import, and then fails every count with FileNotFoundError
# if the folder is gone: a process that inherited the variable from a server that has since stopped (and
# removed its folder) counts in memory instead of failing every request it serves.
if (_folder := os.environ.get("PROMETHEUS_MULTIPROC_DIR")) is not None and not os.path.isdir(_folder):
    del os.environ["PROMETHEUS_MULTIPROC_DIR"]

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client import values as prometheus_values

__all__ = [
    "CACHE_REQUESTS",
    "DB_CONNECTIONS",
    "DB_POOL_OVERFLOW",
    "DB_QUERY_DURATION",
    "EMBEDDING_COST",
    "EMBEDDING_REQUESTS",
    "EMBEDDING_TOKENS",
    "EVENTS",
    "HTTP_DURATION",
    "INGESTED_CHUNKS",
    "INGESTED_DOCUMENTS",
    "INGEST_STAGE_DURATION",
    "MULTIPROCESS_ENV",
    "RATE_LIMITED",
    "SEARCH_DURATION",
    "SEARCH_EMPTY",
    "SEARCH_RESULTS",
    "count_embedding",
    "count_ingested",
    "multiprocess",
    "statement_kind",
    "status_class",
]

MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"

# A search or a statement takes from under a millisecond (cached, dense) to seconds (a cold PostgreSQL
# full-text query); a request up to a minute (an upload). Base units: seconds.
_FAST_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_REQUEST_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

# The event metrics live in a registry of ragstore's own (never the library's global one), which a
# single-process exposition reads; in multiprocess mode the files are read instead.
EVENTS = CollectorRegistry(auto_describe=True)

HTTP_DURATION = Histogram(
    "ragstore_http_request_duration_seconds",
    "HTTP requests by route template, method and status class, and how long each took to answer",
    ["route", "method", "status_class"],
    buckets=_REQUEST_BUCKETS,
    registry=EVENTS,
)
RATE_LIMITED = Counter(
    "ragstore_rate_limited_requests",
    "Requests refused with 429 by the rate limiter or the cap on requests in flight",
    registry=EVENTS,
)
SEARCH_DURATION = Histogram(
    "ragstore_search_duration_seconds",
    "Searches answered (the result cache included) by mode and vector backend, and how long each took",
    ["mode", "backend"],
    buckets=_FAST_BUCKETS,
    registry=EVENTS,
)
SEARCH_RESULTS = Counter("ragstore_search_results", "Hits returned by searches", ["mode"], registry=EVENTS)
SEARCH_EMPTY = Counter("ragstore_search_empty_results", "Searches that returned no hit", ["mode"], registry=EVENTS)
DB_QUERY_DURATION = Histogram(
    "ragstore_db_query_duration_seconds",
    "SQL statements run through SQLAlchemy, by dialect and kind (select, insert, update, delete, other)",
    ["dialect", "statement"],
    buckets=_FAST_BUCKETS,
    registry=EVENTS,
)
DB_CONNECTIONS = Gauge(
    "ragstore_db_connections",
    "Database connections of the pool checked out now (the live processes' sum)",
    ["dialect"],
    multiprocess_mode="livesum",
    registry=EVENTS,
)
DB_POOL_OVERFLOW = Gauge(
    "ragstore_db_pool_overflow_connections",
    "Connections open beyond the pool's size now (DATABASE_POOL_SIZE; up to DATABASE_MAX_OVERFLOW): a pool "
    "that lives in its overflow is too small for its load",
    ["dialect"],
    multiprocess_mode="livesum",
    registry=EVENTS,
)


CACHE_REQUESTS = Counter(
    "ragstore_cache_requests",
    "Cache look-ups by layer (embeddings, search, ...) and outcome: hit_local (this process), hit_shared "
    "(Redis) or miss",
    ["layer", "outcome"],
    registry=EVENTS,
)
EMBEDDING_REQUESTS = Counter(
    "ragstore_embedding_requests",
    "Calls to an embedding backend by backend and model",
    ["backend", "model"],
    registry=EVENTS,
)
EMBEDDING_TOKENS = Counter(
    "ragstore_embedding_tokens", "Tokens sent to embedding backends", ["backend", "model"], registry=EVENTS
)
EMBEDDING_COST = Counter(
    "ragstore_embedding_cost_usd", "What embedding calls cost, in US dollars", ["backend", "model"], registry=EVENTS
)
INGESTED_DOCUMENTS = Counter(
    "ragstore_ingested_documents",
    "Documents through ingest by outcome (added, replaced, unchanged, duplicate)",
    ["outcome"],
    registry=EVENTS,
)
INGESTED_CHUNKS = Counter("ragstore_ingested_chunks", "Chunks stored by ingest", registry=EVENTS)
INGEST_STAGE_DURATION = Histogram(
    "ragstore_ingest_stage_duration_seconds",
    "Time spent in each stage of an ingest: load (a file's text), chunk, embed (both models), analyse (the "
    "lexical terms), store (the transaction), index (the vector index applying the outbox)",
    ["stage"],
    buckets=_REQUEST_BUCKETS,
    registry=EVENTS,
)


def count_embedding(backend: str, model: str, tokens: int, cost_usd: float) -> None:
    """One call to an embedding backend (the embedders call it whether or not usage rows are kept)."""
    EMBEDDING_REQUESTS.labels(backend, model).inc()
    if tokens:
        EMBEDDING_TOKENS.labels(backend, model).inc(tokens)
    if cost_usd:
        EMBEDDING_COST.labels(backend, model).inc(cost_usd)


def count_ingested(outcomes: list[tuple[str, int]]) -> None:
    """An ingest batch's documents by outcome and the chunks it stored (those of added and replaced ones)."""
    for status, chunks in outcomes:
        INGESTED_DOCUMENTS.labels(status).inc()
        if status in ("added", "replaced"):
            INGESTED_CHUNKS.inc(chunks)


def status_class(status: int) -> str:
    """ "2xx", "4xx", ...: the status code's class, a label with five values."""
    return f"{status // 100}xx" if 100 <= status <= 599 else "other"


def statement_kind(statement: str) -> str:
    """select, insert, update, delete or other: the first word of a statement, a label with five values."""
    word = statement.lstrip()[:6].lower()
    return word if word in ("select", "insert", "update", "delete") else "other"


def multiprocess() -> bool:
    """Whether this process writes its values to files: decided when prometheus-client was first imported,
    from the environment of that moment, not from the environment now."""
    return prometheus_values.ValueClass is not prometheus_values.MutexValue
