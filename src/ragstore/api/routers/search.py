from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from ragstore.api.deps import get_store
from ragstore.api.errors import DOWN, INVALID, JSON_BODY, error_responses
from ragstore.api.fast_json import FastJsonRoute
from ragstore.api.permissions import require
from ragstore.schemas import (
    MAX_SEARCH_BATCH,
    AnalyticsSummary,
    SearchBatchRequest,
    SearchBatchResponse,
    SearchMode,
    SearchRequest,
    SearchResponse,
)
from ragstore.schemas.core import INT64_MAX, StorableStr
from ragstore.security.principal import Role
from ragstore.service import RagStore

# Search bodies carry query vectors: read them with the fast parser (api/fast_json.py).
router = APIRouter(prefix="/v1/collections/{name}", tags=["search"], route_class=FastJsonRoute)

UNKNOWN = (404, "The collection does not exist.")


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: StorableStr = Field(min_length=1, max_length=10_000, description="The query the result was returned for")
    chunk_id: int = Field(ge=1, le=INT64_MAX, description="The result's chunk_id")
    relevant: bool
    mode: SearchMode | None = None
    comment: StorableStr = Field("", max_length=2000)


class FeedbackResponse(BaseModel):
    id: int


@router.post(
    "/search",
    response_model=SearchResponse,
    summary="Dense, lexical or hybrid search",
    dependencies=[Depends(require(Role.READ, "name"))],
    responses=error_responses(*JSON_BODY, UNKNOWN, DOWN),
)
async def search(name: str, body: SearchRequest, store: RagStore = Depends(get_store)) -> SearchResponse:
    # Cached results never get here (api/fast_search.py); the full search runs on a worker thread.
    return await run_in_threadpool(store.search.run, name, body)


@router.post(
    "/search/batch",
    response_model=SearchBatchResponse,
    summary=f"Up to {MAX_SEARCH_BATCH} searches in one request, answered in order",
    description="Each search is a search body of its own (any mode, filter, text and/or vector); the answer holds "
    "one search response per search, in order, each as `POST /search` gives it. Every search is checked first: "
    "one that is not valid refuses the batch with 422 naming its index (`searches.3...`) and none runs. Each "
    "search counts as one for the rate limit (the batch is admitted at the cost of its size) and in the usage "
    "log (one row per search).",
    dependencies=[Depends(require(Role.READ, "name"))],
    responses=error_responses(*JSON_BODY, UNKNOWN, DOWN),
)
async def search_batch(name: str, body: SearchBatchRequest, store: RagStore = Depends(get_store)) -> Response:
    # One worker thread for the whole batch: the searches share its embedding calls (search/batch.py).
    results = await run_in_threadpool(store.search.batch, name, body.searches)
    # Serialised by pydantic-core at once: FastAPI would validate the hundred responses against the model it
    # built them from, then encode them again with `json` (the documented shape is the same: response_model).
    answer = SearchBatchResponse.model_construct(results=results).model_dump_json()
    return Response(content=answer, media_type="application/json")


@router.post(
    "/feedback",
    response_model=FeedbackResponse,
    status_code=201,
    summary="Mark a result relevant or not",
    dependencies=[Depends(require(Role.WRITE, "name"))],
    responses=error_responses(*JSON_BODY, (404, "The collection does not exist, or the chunk is not in it."), DOWN),
)
async def feedback(name: str, body: FeedbackRequest, store: RagStore = Depends(get_store)) -> FeedbackResponse:
    feedback_id = await run_in_threadpool(store.analytics.feedback, name, **body.model_dump())
    return FeedbackResponse(id=feedback_id)


@router.get(
    "/analytics",
    response_model=AnalyticsSummary,
    summary="Searches, latency, cache hits, feedback and the chunks users find relevant (admin: raw queries)",
    dependencies=[Depends(require(Role.ADMIN, "name"))],
    responses=error_responses(UNKNOWN, INVALID, DOWN),
)
async def analytics(
    name: str,
    days: int = Query(7, ge=1, le=3650),
    top: int = Query(10, ge=1, le=100),
    store: RagStore = Depends(get_store),
) -> AnalyticsSummary:
    return await run_in_threadpool(store.analytics.summary, name, days=days, top=top)
