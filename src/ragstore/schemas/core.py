"""Collections, documents and search: the result and input types of the facade's data calls."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    SerializerFunctionWrapHandler,
    StringConstraints,
    model_serializer,
)

from ragstore.errors import InvalidInput
from ragstore.valid_text import checked_json, text_problem

__all__ = [
    "INGEST_STATUSES",
    "INT64_MAX",
    "MAX_SEARCH_BATCH",
    "MAX_SEARCH_DEPTH",
    "ChunkInfo",
    "ChunkInput",
    "ChunkVector",
    "ChunkVectorsRequest",
    "CollectionInfo",
    "DocumentDeletion",
    "DocumentInfo",
    "DocumentInput",
    "DocumentQuery",
    "DocumentSelection",
    "HybridFusion",
    "IndexState",
    "IngestOutcome",
    "IngestReport",
    "IngestStatus",
    "IsoTime",
    "Model",
    "SearchBatchRequest",
    "SearchBatchResponse",
    "SearchHit",
    "SearchMode",
    "SearchRequest",
    "SearchResponse",
    "SparseModel",
    "StorableJson",
    "StorableStr",
    "StorableText",
    "UtcTime",
]

# duplicate: another document (`duplicate_of`) already holds this content and it was not stored under its
# own source; deleted: a sync removed a document whose file is gone from the tree.
IngestStatus = Literal["added", "unchanged", "replaced", "duplicate", "deleted", "failed"]
INGEST_STATUSES: tuple[IngestStatus, ...] = ("added", "unchanged", "replaced", "duplicate", "deleted", "failed")
# indexed: every chunk searchable; pending: waiting for the index; deleting: on its way out.
IndexState = Literal["indexed", "pending", "deleting"]
SearchMode = Literal["hybrid", "dense", "lexical"]
HybridFusion = Literal["bridge", "rrf"]
MAX_SEARCH_DEPTH = 1000  # offset + k: the deepest result a search pages to


def _storable(value: Any) -> Any:
    """A request string that is valid Unicode without NUL (valid_text.py has the rule and why).

    A before-validator (anything but a string is left to the `str` schema that follows): that way a field's
    own length constraints stay on the string itself, with pydantic's plain "at most N characters" message.
    """
    problem = text_problem(value) if isinstance(value, str) else None
    if problem is not None:
        raise ValueError(problem)
    return value


def _storable_body(value: Any) -> Any:
    """Document text and titles: lone surrogates refused; NUL allowed here, the core removes it."""
    problem = text_problem(value, allow_nul=True) if isinstance(value, str) else None
    if problem is not None:
        raise ValueError(problem)
    return value


def _storable_json(value: Any) -> Any:
    try:
        return checked_json(value, "value")
    except InvalidInput as exc:
        raise ValueError(exc.message.removeprefix("value").lstrip(": ").lstrip(".") or exc.message) from None


# Request strings, checked by the API before any work (422 naming the field); the core checks again for
# Python and CLI callers.
StorableStr = Annotated[str, BeforeValidator(_storable)]
StorableText = Annotated[str, BeforeValidator(_storable_body)]
StorableJson = Annotated[dict[str, Any], AfterValidator(_storable_json)]
# The length constraint before the check, so that it applies to the string itself ("at most 10000
# characters"); after a validator pydantic can only count "items after validation".
SearchQuery = Annotated[str, StringConstraints(max_length=10_000), BeforeValidator(_storable)]
# Any integer a request names (ids, offsets, counts): it must fit the signed 64-bit columns it is compared
# with, or SQLite raises OverflowError (a 500) before the query runs.
INT64_MAX = 2**63 - 1


class Model(BaseModel):
    """The base of ragstore's result types: readable from ORM rows and dataclasses alike."""

    model_config = ConfigDict(from_attributes=True)


def _as_utc(value: datetime) -> datetime:
    """Every stored time is UTC, but SQLite hands it back naive: name the zone, or the JSON fails `date-time`."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# A time in UTC, timezone-aware on SQLite and PostgreSQL alike (OpenAPI `date-time` requires the offset).
UtcTime = Annotated[datetime, AfterValidator(_as_utc)]

# A time the run records have always sent as `datetime.isoformat()` ("+00:00", not pydantic's "Z"):
# typed for Python callers, the same text for the clients that parse it.
IsoTime = Annotated[UtcTime, PlainSerializer(lambda v: v.isoformat(), return_type=str, when_used="json")]


class SparseModel(Model):
    """A result whose optional parts are absent, not null, when it has none (e.g. a failed run's findings).

    The JSON these results replace left such keys out, and clients test for the key; so a dump carries only
    the fields that were given, and a field given as None stays null.
    """

    # Unannotated on purpose: pydantic documents the return annotation of a serializer as the response
    # schema, which would make OpenAPI show a bare object instead of this model's fields.
    @model_serializer(mode="wrap")
    def _given_fields_only(self, handler: SerializerFunctionWrapHandler):  # type: ignore[no-untyped-def]
        body = handler(self)
        return {k: v for k, v in body.items() if k in self.model_fields_set}


class CollectionInfo(Model):
    name: str
    description: str
    embedding_model: str
    dimension: int
    metric: str
    document_count: int = 0
    chunk_count: int = 0
    indexed_chunk_count: int = 0
    created_at: UtcTime | None = None
    updated_at: UtcTime | None = None


class ChunkInfo(Model):
    id: int
    ordinal: int
    text: str
    token_count: int
    content_hash: str
    status: str


class DocumentInfo(Model):
    id: int
    collection: str
    source_uri: str
    title: str
    mime_type: str
    size_bytes: int
    metadata: dict[str, Any]
    content_hash: str
    encoding: str | None = None  # the text encoding of the file it came from (None: sent as text)
    source_hash: str | None = None  # SHA-256 of that file's raw bytes, for a sync to compare
    status: str
    index_state: IndexState
    chunk_count: int
    created_at: UtcTime | None = None
    updated_at: UtcTime | None = None
    chunks: list[ChunkInfo] | None = None


def _as_vector(value: Any) -> Any:
    """Accept a numpy array as it is: validating 1,536 floats one by one costs more than storing them."""
    if isinstance(value, np.ndarray):
        if value.ndim != 1 or not np.issubdtype(value.dtype, np.number):
            raise ValueError("vector must be a one-dimensional array of numbers")
        return value
    return value


class ChunkInput(BaseModel):
    """A chunk given by the caller, optionally with its own vector (bring-your-own-embeddings)."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    text: StorableText = Field(min_length=1)
    vector: Annotated[np.ndarray | list[float] | None, BeforeValidator(_as_vector)] = Field(
        None, max_length=16_384, json_schema_extra={"type": "array", "items": {"type": "number"}, "maxItems": 16_384}
    )


class DocumentInput(BaseModel):
    """A document given as text (not a file)."""

    model_config = ConfigDict(extra="forbid")

    text: StorableText = Field("", description="The document text; may be empty only when `chunks` are given.")
    title: StorableText = ""
    source_uri: StorableStr | None = Field(None, max_length=2048)
    metadata: StorableJson = Field(default_factory=dict)
    chunks: list[ChunkInput] | None = Field(
        None,
        max_length=100_000,
        description="Pre-split chunks (and optional vectors); when absent the text is chunked by ragstore.",
    )


class IngestOutcome(Model):
    source_uri: str
    status: IngestStatus
    document_id: int | None = None
    title: str = ""
    chunks: int = 0
    index_state: str | None = None
    error: str | None = None
    duplicate_of: str | None = None  # status duplicate: the source of the document holding this content


class DocumentDeletion(Model):
    """A bulk delete: the documents it hid now (their vectors and rows go through the outbox)."""

    collection: str
    deleted: int
    document_ids: list[int] = Field(default_factory=list)


SourceUri = Annotated[str, StringConstraints(min_length=1, max_length=2048), BeforeValidator(_storable)]


class DocumentQuery(BaseModel):
    """`POST .../documents/find`: documents by source (a framework's own ids) and/or filter."""

    model_config = ConfigDict(extra="forbid")

    sources: list[SourceUri] | None = Field(None, max_length=10_000, description="source_uri values (any of)")
    filter: StorableJson | None = Field(None, description="Search's filter syntax (README: Filters)")
    limit: int = Field(100, ge=1, le=10_000)
    offset: int = Field(0, ge=0, le=INT64_MAX)
    with_chunks: bool = Field(False, description="Give each document its chunks (and so its text)")


class DocumentSelection(BaseModel):
    """`POST .../documents/delete`: which documents to delete; `everything` must be said outright."""

    model_config = ConfigDict(extra="forbid")

    sources: list[SourceUri] | None = Field(None, max_length=10_000, description="source_uri values (any of)")
    filter: StorableJson | None = Field(None, description="Search's filter syntax; an empty filter is refused")
    everything: bool = Field(False, description="Every document of the collection (alone)")


class ChunkVectorsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    chunk_ids: list[Annotated[int, Field(ge=1, le=INT64_MAX)]] = Field(max_length=10_000)


class ChunkVector(Model):
    """A chunk's vector as SQL holds it (what an MMR re-ranking or an export needs)."""

    chunk_id: int
    vector: list[float]


class IngestReport(Model):
    collection: str
    outcomes: list[IngestOutcome] = Field(default_factory=list)
    dry_run: bool = False  # what would be done: nothing was stored or deleted

    def count(self, status: IngestStatus) -> int:
        return sum(1 for o in self.outcomes if o.status == status)

    @property
    def summary(self) -> dict[str, int]:
        return {s: self.count(s) for s in INGEST_STATUSES}


@dataclass(frozen=True, slots=True)
class SearchHit:
    """One result. A plain dataclass, not a pydantic model: a search builds many of them on the hot path,
    and pydantic (and FastAPI) serialise dataclasses all the same."""

    chunk_id: int
    document_id: int
    score: float
    text: str
    ordinal: int
    source_uri: str
    title: str
    metadata: dict[str, Any]
    # With `explain`: the dense and lexical ranks and scores (1-based; None where a side did not propose
    # the chunk) and the fused score.
    explain: dict[str, Any] | None = None


class SearchResponse(Model):
    collection: str
    query: str | None
    k: int
    # The mode that ran: hybrid falls back to dense for a vector alone, to lexical where no vector can be made.
    mode: str = "hybrid"
    offset: int = 0
    hits: list[SearchHit]
    # Pass it as `cursor` for the next page; None when there is none.
    next_cursor: str | None = None
    took_ms: float
    # Vector hits SQL does not hold as indexed (orphans or not yet visible): dropped, never shown.
    dropped: int = 0
    # Served from the search-result cache (L2): the hits are those the same request got at this write version.
    cached: bool = False
    # The query was longer than a search reads (RAGSTORE_QUERY_MAX_TOKENS): only its first query_chars_used
    # characters were embedded and analysed.
    query_truncated: bool = False
    query_chars_used: int | None = None


class SearchRequest(BaseModel):
    """One search, as every face takes it: the HTTP body, the fast path's field list, the CLI's options.

    The HTTP API validates requests against these constraints; the facade applies the same rules
    (search/options.py) to Python callers, whose arguments arrive unvalidated.
    """

    model_config = ConfigDict(extra="forbid")

    query: SearchQuery | None = Field(None, description="Text to search for (embedded, and analysed)")
    vector: list[float] | None = Field(
        None, max_length=16_384, description="A query vector of the collection's dimension"
    )
    k: int = Field(10, ge=1, le=MAX_SEARCH_DEPTH, description="How many results")
    mode: SearchMode | None = Field(
        None, description="Default: the server's RAGSTORE_SEARCH_MODE (hybrid unless configured otherwise)"
    )
    filter: StorableJson | None = Field(
        None,
        description="Document fields or metadata keys: a value, a list (any of), or"
        " {$eq,$ne,$gt,$gte,$lt,$lte,$in,$nin,$exists}; $and and $or take lists of filters, $not one filter"
        " (README: Filters)",
    )
    offset: int = Field(0, ge=0, le=MAX_SEARCH_DEPTH, description="Skip this many results")
    cursor: StorableStr | None = Field(None, max_length=200, description="A previous response's next_cursor")
    min_score: float | None = Field(None, description="Leave out results scoring below this (the mode's score)")
    explain: bool = Field(False, description="Give each hit its dense and lexical rank and score")
    rrf_k: int | None = Field(None, ge=1, le=10_000, description="Reciprocal rank fusion's k (hybrid)")
    dense_weight: float | None = Field(None, ge=0, le=100, description="Hybrid: the weight of the dense ranking")
    lexical_weight: float | None = Field(None, ge=0, le=100, description="Hybrid: the weight of the lexical ranking")
    min_coverage: float | None = Field(
        None,
        ge=0,
        le=1,
        description="Hybrid with rrf: the share of the query's weighted terms a lexical hit must match",
    )
    fusion: HybridFusion | None = Field(
        None,
        description="Hybrid: bridge (two embeddings and the cross-language expanded lexical score, standardised"
        " and added) or rrf (reciprocal rank fusion); default: the server's RAGSTORE_HYBRID_FUSION",
    )


MAX_SEARCH_BATCH = 100  # searches in one batch: what one model call embeds at its best rate (search/batch.py)


class SearchBatchRequest(BaseModel):
    """Several searches of one collection, each exactly a `SearchRequest`, answered in order."""

    model_config = ConfigDict(extra="forbid")

    searches: list[SearchRequest] = Field(
        min_length=1,
        max_length=MAX_SEARCH_BATCH,
        description=f"1 to {MAX_SEARCH_BATCH} searches, any mode; one that is not valid refuses the batch (422 "
        "naming its index) and none runs",
    )


class SearchBatchResponse(Model):
    # One response per search, in the order of the request's `searches`.
    results: list[SearchResponse]
