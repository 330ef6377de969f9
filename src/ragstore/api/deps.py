"""Dependencies that routes declare: the store owned by the application."""

from __future__ import annotations

from fastapi import Request

from ragstore.service import RagStore

__all__ = ["get_store"]


def get_store(request: Request) -> RagStore:
    store: RagStore = request.app.state.store
    return store
