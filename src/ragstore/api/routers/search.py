from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from ragstore.api.deps import get_store
from ragstore.schemas import SearchResponse
from ragstore.service import MAX_K, RagStore

router = APIRouter(prefix="/v1/collections/{name}", tags=["search"])


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str | None = Field(None, max_length=10_000, description="Text to search for (embedded, and analysed)")
    vector: list[float] | None = Field(None, description="A query vector of the collection's dimension")
    k: int = Field(10, ge=1, le=MAX_K)
    mode: Literal["hybrid", "dense", "lexical"] | None = Field(
        None, description="Default: the server's RAGSTORE_SEARCH_MODE (hybrid unless configured otherwise)"
    )
    filter: dict[str, Any] | None = Field(
        None, description="Document fields or metadata keys: a value, a list (any of), or {$gt,$gte,$lt,$lte,$ne,$in}"
    )
    offset: int = Field(0, ge=0, le=MAX_K, description="Skip this many results")
    cursor: str | None = Field(None, max_length=200, description="A previous response's next_cursor")
    min_score: float | None = Field(None, description="Leave out results scoring below this (the mode's score)")
    explain: bool = Field(False, description="Give each hit its dense and lexical rank and score")
    rrf_k: int | None = Field(None, ge=1, le=10_000, description="Reciprocal rank fusion's k (hybrid)")
    dense_weight: float | None = Field(None, ge=0, le=100)
    lexical_weight: float | None = Field(None, ge=0, le=100)
    min_coverage: float | None = Field(
        None, ge=0, le=1, description="Hybrid: the share of the query's weighted terms a lexical hit must match"
    )


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1, max_length=10_000, description="The query the result was returned for")
    chunk_id: int = Field(description="The result's chunk_id")
    relevant: bool
    mode: Literal["hybrid", "dense", "lexical"] | None = None
    comment: str = Field("", max_length=2000)


class FeedbackResponse(BaseModel):
    id: int


@router.post("/search", response_model=SearchResponse, summary="Dense, lexical or hybrid search")
async def search(name: str, body: SearchRequest, store: RagStore = Depends(get_store)) -> SearchResponse:
    # Cached results never get here (api/fast_search.py); the full search runs on a worker thread.
    fields = body.model_dump(exclude={"query", "vector"})
    return await run_in_threadpool(store.search, name, body.query, vector=body.vector, **fields)


@router.post("/feedback", response_model=FeedbackResponse, status_code=201, summary="Mark a result relevant or not")
async def feedback(name: str, body: FeedbackRequest, store: RagStore = Depends(get_store)) -> FeedbackResponse:
    feedback_id = await run_in_threadpool(store.record_feedback, name, **body.model_dump())
    return FeedbackResponse(id=feedback_id)


@router.get("/analytics", summary="Searches, latency, cache hits, feedback and the chunks users find relevant")
async def analytics(
    name: str,
    days: int = Query(7, ge=1, le=3650),
    top: int = Query(10, ge=1, le=100),
    store: RagStore = Depends(get_store),
) -> dict[str, Any]:
    return await run_in_threadpool(store.analytics, name, days=days, top=top)
