"""Usage: what was called, by which key, at what cost; admin only.

A key learns its own budget from the `RateLimit-*` headers of every answer; the history of everyone's
requests (routes, collections, volumes) is the operator's, so no other role may read it, not even for the
caller's own key.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query

from ragstore.api.deps import get_store
from ragstore.api.errors import DOWN, INVALID, error_responses
from ragstore.api.permissions import require
from ragstore.schemas import UsageSummary
from ragstore.security.principal import Role
from ragstore.security.usage import MAX_SUMMARY_DAYS, MAX_SUMMARY_ROWS
from ragstore.service import RagStore

router = APIRouter(prefix="/v1/usage", tags=["usage"])


@router.get(
    "",
    response_model=UsageSummary,
    summary="Requests by day, key and route: counts, errors, 429s, latency, bytes, embedding calls and tokens",
    dependencies=[Depends(require(Role.ADMIN))],
    responses=error_responses(
        (401, "No API key or session, or one that proves nothing."),
        (403, "The caller does not hold the admin role."),
        (404, "`key` names no API key."),
        INVALID,
        DOWN,
    ),
)
def usage_summary(
    key: str | None = Query(
        None, min_length=1, max_length=64, description="Only this key: its id or its public key id."
    ),
    days: int = Query(7, ge=1, le=MAX_SUMMARY_DAYS, description="The window, in days up to now."),
    limit: int = Query(1000, ge=1, le=MAX_SUMMARY_ROWS, description="At most this many rows (busiest first)."),
    store: RagStore = Depends(get_store),
) -> UsageSummary:
    return store.usage.summary(key=key, days=days, limit=limit)
