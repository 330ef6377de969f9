"""`POST /v1/chat/purge`: remove soft-deleted, expired and idle conversations for good (admin only).

Not under /v1/conversations: there `purge` would be read as a conversation id by the routes of one
conversation (a DELETE of it would answer 404 instead of 405).
"""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from ragstore.api.deps import get_store
from ragstore.api.errors import DOWN, JSON_BODY, error_responses
from ragstore.api.permissions import require
from ragstore.schemas.chat import PurgeReport
from ragstore.security.principal import Role
from ragstore.service import RagStore

router = APIRouter(prefix="/v1/chat", tags=["conversations"])


class PurgeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    older_than_days: int | None = Field(
        None, ge=1, le=36_500, description="Also remove conversations idle (no message, no change) this many days."
    )
    dry_run: bool = Field(False, description="Count what would go; remove nothing.")


@router.post(
    "/purge",
    response_model=PurgeReport,
    summary="Remove soft-deleted and expired conversations (and idle ones) with their messages, for good",
    dependencies=[Depends(require(Role.ADMIN))],
    responses=error_responses(
        *JSON_BODY,
        (401, "No API key or session, or one that proves nothing."),
        (403, "The caller does not hold the admin role."),
        DOWN,
    ),
)
def purge_conversations(body: PurgeRequest, store: RagStore = Depends(get_store)) -> PurgeReport:
    age = None if body.older_than_days is None else timedelta(days=body.older_than_days)
    return store.chat.purge(age, dry_run=body.dry_run)
