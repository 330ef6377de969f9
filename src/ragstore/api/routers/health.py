from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from ragstore.api.deps import get_store
from ragstore.service import RagStore

router = APIRouter(tags=["health"])


@router.get("/health", summary="Overall health: ok, degraded (serving, something behind) or down")
def health(store: RagStore = Depends(get_store)) -> JSONResponse:
    body: dict[str, Any] = store.ops.health()
    return JSONResponse(body, status_code=503 if body["status"] == "down" else 200)


@router.get("/health/database", summary="Database reachability, dialect, schema revision and latency")
def database_health(store: RagStore = Depends(get_store)) -> JSONResponse:
    body = store.ops.database_health()
    return JSONResponse(body, status_code=200 if body["status"] == "ok" else 503)
