from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from ragstore.api.deps import get_store
from ragstore.schemas import SearchResponse
from ragstore.service import MAX_K, RagStore

router = APIRouter(prefix="/v1/collections/{name}", tags=["search"])


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str | None = Field(None, max_length=10_000, description="Text to embed and search for")
    vector: list[float] | None = Field(None, description="A query vector of the collection's dimension")
    k: int = Field(10, ge=1, le=MAX_K)
    filter: dict[str, Any] | None = Field(
        None, description="Document fields or metadata keys: a value, a list (any of), or {$gt,$gte,$lt,$lte,$ne,$in}"
    )


@router.post("/search", response_model=SearchResponse, summary="Nearest chunks to a query text or vector")
async def search(name: str, body: SearchRequest, store: RagStore = Depends(get_store)) -> SearchResponse:
    # Cached results never get here (api/fast_search.py); the full search runs on a worker thread.
    return await run_in_threadpool(store.search, name, body.query, vector=body.vector, k=body.k, filter=body.filter)
