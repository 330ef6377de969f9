"""Dependencies that routes declare: the store owned by the application."""

from __future__ import annotations

from fastapi import Request

from ragstore.service import RagStore

__all__ = ["get_store"]


async def get_store(request: Request) -> RagStore:
    """Async on purpose: FastAPI runs a plain `def` dependency on a worker thread, a hop per request."""
    store: RagStore = request.app.state.store
    return store
