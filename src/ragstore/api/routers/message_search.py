"""`GET /v1/messages/search`: full-text search over the messages the caller may read.

Included before the conversations routers, so that `search` is never read as a message id.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import APIRouter, Depends, Query

from ragstore.api.deps import get_store
from ragstore.api.errors import DOWN, INVALID, error_responses
from ragstore.api.permissions import require
from ragstore.chat.search import MAX_MESSAGE_HITS, MAX_MESSAGE_QUERY_CHARS
from ragstore.schemas.chat import MessageSearchResult
from ragstore.security.principal import Role
from ragstore.service import RagStore
from ragstore.valid_text import INT64_MAX

router = APIRouter(prefix="/v1/messages", tags=["conversations"])


@router.get(
    "/search",
    response_model=MessageSearchResult,
    summary="Messages matching a query (Korean-aware), best first, with highlighted passages",
    dependencies=[Depends(require(Role.READ, on_any=True))],
    responses=error_responses(
        (401, "No API key or session, or one that proves nothing."),
        (403, "The caller holds no read role on any collection."),
        (404, "`user` names no user."),
        INVALID,
        DOWN,
    ),
)
def search_messages(
    q: str = Query(..., min_length=1, max_length=MAX_MESSAGE_QUERY_CHARS, description="The words to find."),
    k: int = Query(10, ge=1, le=MAX_MESSAGE_HITS, description="How many messages."),
    user: int | None = Query(None, ge=1, le=INT64_MAX, description="Only this user's conversations (id)."),
    conversation_id: str | None = Query(None, min_length=1, max_length=26, description="Only this conversation."),
    role: Literal["user", "assistant", "system", "tool"] | None = Query(None, description="Only this role."),
    since: datetime | None = Query(None, description="Only messages at or after this time."),
    until: datetime | None = Query(None, description="Only messages before this time."),
    store: RagStore = Depends(get_store),
) -> MessageSearchResult:
    return store.chat.search(q, k=k, user=user, conversation_id=conversation_id, role=role, since=since, until=until)
