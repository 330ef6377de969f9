"""`GET /metrics`: the Prometheus text format, for a scraper holding a key with the `metrics` role (or an
admin). What each metric means and why some are summed over the server's processes and others are not:
ops/metrics.py."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from ragstore.api.deps import get_store
from ragstore.api.permissions import require
from ragstore.ops.metrics import CONTENT_TYPE, exposition
from ragstore.security.principal import Role
from ragstore.service import RagStore

router = APIRouter(tags=["health"])


@router.get(
    "/metrics",
    dependencies=[Depends(require(Role.METRICS))],
    summary="Metrics in the Prometheus text format (every server process's counts, and the store's state)",
    response_class=Response,
    responses={
        200: {
            "description": "The metrics, in the Prometheus text exposition format 0.0.4",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        }
    },
)
async def metrics(store: RagStore = Depends(get_store)) -> Response:
    # The state metrics read the database: off the event loop.
    body = await run_in_threadpool(exposition, store)
    return Response(body, media_type=CONTENT_TYPE)
