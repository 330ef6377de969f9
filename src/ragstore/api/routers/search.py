from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Response
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
async def search(name: str, body: SearchRequest, store: RagStore = Depends(get_store)) -> Any:
    # A cached result is answered on the event loop (no thread hop); everything else runs on a thread.
    cached = store.cached_search_json(name, body.query, vector=body.vector, k=body.k, filter=body.filter)
    if cached is not None:
        return Response(content=cached, media_type="application/json")
    return await run_in_threadpool(store.search, name, body.query, vector=body.vector, k=body.k, filter=body.filter)
