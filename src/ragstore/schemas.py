"""The public result and input types, shared by the Python API, the HTTP API and the CLI's --json."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

__all__ = [
    "ChunkInfo",
    "ChunkInput",
    "CollectionInfo",
    "DocumentInfo",
    "DocumentInput",
    "IngestOutcome",
    "IngestReport",
    "SearchHit",
    "SearchResponse",
]

IngestStatus = Literal["added", "unchanged", "replaced", "failed"]
# indexed: every chunk searchable; pending: waiting for the index; deleting: on its way out.
IndexState = Literal["indexed", "pending", "deleting"]


class _Model(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class CollectionInfo(_Model):
    name: str
    description: str
    embedding_model: str
    dimension: int
    metric: str
    document_count: int = 0
    chunk_count: int = 0
    indexed_chunk_count: int = 0
    created_at: datetime | None = None
    updated_at: datetime | None = None


class ChunkInfo(_Model):
    id: int
    ordinal: int
    text: str
    token_count: int
    content_hash: str
    status: str


class DocumentInfo(_Model):
    id: int
    collection: str
    source_uri: str
    title: str
    mime_type: str
    size_bytes: int
    metadata: dict[str, Any]
    content_hash: str
    status: str
    index_state: IndexState
    chunk_count: int
    created_at: datetime | None = None
    updated_at: datetime | None = None
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

    text: str = Field(min_length=1)
    vector: Annotated[np.ndarray | list[float] | None, BeforeValidator(_as_vector)] = Field(
        None, json_schema_extra={"type": "array", "items": {"type": "number"}}
    )


class DocumentInput(BaseModel):
    """A document given as text (not a file)."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field("", description="The document text; may be empty only when `chunks` are given.")
    title: str = ""
    source_uri: str | None = Field(None, max_length=2048)
    metadata: dict[str, Any] = Field(default_factory=dict)
    chunks: list[ChunkInput] | None = Field(
        None, description="Pre-split chunks (and optional vectors); when absent the text is chunked by ragstore."
    )


class IngestOutcome(_Model):
    source_uri: str
    status: IngestStatus
    document_id: int | None = None
    title: str = ""
    chunks: int = 0
    index_state: str | None = None
    error: str | None = None


class IngestReport(_Model):
    collection: str
    outcomes: list[IngestOutcome] = Field(default_factory=list)

    def count(self, status: IngestStatus) -> int:
        return sum(1 for o in self.outcomes if o.status == status)

    @property
    def summary(self) -> dict[str, int]:
        return {s: self.count(s) for s in ("added", "unchanged", "replaced", "failed")}


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


class SearchResponse(_Model):
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
