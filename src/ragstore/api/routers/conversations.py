"""Conversations, messages, feedback and context over HTTP (issue 18): /v1/conversations and /v1/messages.

Each route translates its arguments and calls one `store.chat` method; the facade scopes every conversation
by the caller (`chat.access`): another user's conversation, a soft-deleted one, or an id that is no ULID is
a 404 on every route, exactly as a conversation that never existed. Reading needs the read role on some
collection, changing anything the write role on some collection; the collections a conversation names are
checked by the facade.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Path, Query, Response

from ragstore.api.deps import get_store
from ragstore.api.errors import DOWN, INVALID, JSON_BODY, error_responses
from ragstore.api.permissions import require
from ragstore.chat.context import MAX_BUDGET
from ragstore.chat.conversations import MAX_PAGE
from ragstore.chat.messages import MAX_SHOWN
from ragstore.schemas.chat import (
    ChatContext,
    ConversationCreate,
    ConversationDetail,
    ConversationInfo,
    ConversationPage,
    ConversationUpdate,
    FeedbackInfo,
    FeedbackInput,
    MessageCreate,
    MessageInfo,
)
from ragstore.schemas.core import INT64_MAX
from ragstore.security.principal import Role
from ragstore.service import RagStore

__all__ = ["messages_router", "router"]

router = APIRouter(prefix="/v1/conversations", tags=["conversations"])
messages_router = APIRouter(prefix="/v1/messages", tags=["conversations"])

READ = [Depends(require(Role.READ, on_any=True))]
WRITE = [Depends(require(Role.WRITE, on_any=True))]
ABSENT = (404, "No such conversation for this caller: unknown, soft-deleted, another user's, or not a ULID.")
NO_COLLECTION_OR_USER = (404, "A named collection or user does not exist, or the caller may not read it.")
STALE = (409, "`version` is not the conversation's current version: read it again and retry.")
OTHERS = (403, "Only an admin may create a conversation for another user.")
BAD_MESSAGE = (404, "No such message in a conversation this caller may see.")

ConversationId = Path(
    min_length=1, max_length=26, description="The conversation's id: a ULID (26 characters, Crockford base32)."
)
MessageId = Path(ge=1, le=INT64_MAX, description="The message's id.")


@router.post(
    "",
    response_model=ConversationInfo,
    status_code=201,
    summary="Start a conversation (owned by the caller's user; an admin may name another)",
    dependencies=WRITE,
    responses={201: {"description": "Created."}, **error_responses(*JSON_BODY, OTHERS, NO_COLLECTION_OR_USER, DOWN)},
)
def create_conversation(body: ConversationCreate, store: RagStore = Depends(get_store)) -> ConversationInfo:
    return store.chat.create(body)


@router.get(
    "",
    response_model=ConversationPage,
    summary="The caller's conversations, newest activity first, a page at a time",
    dependencies=READ,
    responses=error_responses((404, "`user` names no user."), INVALID, DOWN),
)
def list_conversations(
    user: str | None = Query(None, min_length=1, max_length=320, description="Only this owner: id or e-mail."),
    end_user_id: str | None = Query(None, min_length=1, max_length=200, description="Only this end user's."),
    is_active: bool | None = Query(None, description="Only active (true) or inactive (false) conversations."),
    collection: str | None = Query(None, min_length=1, max_length=128, description="Only those searching it."),
    limit: int = Query(50, ge=1, le=MAX_PAGE, description="At most this many."),
    cursor: str | None = Query(None, min_length=1, max_length=200, description="`next_cursor` of the last page."),
    store: RagStore = Depends(get_store),
) -> ConversationPage:
    return store.chat.list(
        user=user, end_user_id=end_user_id, is_active=is_active, collection=collection, limit=limit, cursor=cursor
    )


@router.get(
    "/{conversation_id}",
    response_model=ConversationInfo,
    summary="One conversation",
    dependencies=READ,
    responses=error_responses(ABSENT, INVALID, DOWN),
)
def get_conversation(conversation_id: str = ConversationId, store: RagStore = Depends(get_store)) -> ConversationInfo:
    return store.chat.get(conversation_id)


@router.patch(
    "/{conversation_id}",
    response_model=ConversationInfo,
    summary="Change a conversation (title, summary, collections, metadata, active branch) at a known version",
    dependencies=WRITE,
    responses=error_responses(*JSON_BODY, ABSENT, STALE, DOWN),
)
def update_conversation(
    body: ConversationUpdate, conversation_id: str = ConversationId, store: RagStore = Depends(get_store)
) -> ConversationInfo:
    return store.chat.update(conversation_id, body)


@router.delete(
    "/{conversation_id}",
    status_code=204,
    summary="Delete a conversation (soft: hidden from every read at once; purged later)",
    dependencies=WRITE,
    responses=error_responses(ABSENT, INVALID, DOWN),
)
def delete_conversation(conversation_id: str = ConversationId, store: RagStore = Depends(get_store)) -> Response:
    store.chat.delete(conversation_id)
    return Response(status_code=204)


@router.post(
    "/{conversation_id}/messages",
    response_model=MessageInfo,
    status_code=201,
    summary="Add a message (default parent: the active leaf); it becomes the active leaf",
    dependencies=WRITE,
    responses={201: {"description": "Added."}, **error_responses(*JSON_BODY, ABSENT, DOWN)},
)
def add_message(
    body: MessageCreate, conversation_id: str = ConversationId, store: RagStore = Depends(get_store)
) -> MessageInfo:
    return store.chat.add(conversation_id, body)


@router.get(
    "/{conversation_id}/messages",
    response_model=ConversationDetail,
    summary="The conversation and its active branch oldest first (or every branch)",
    dependencies=READ,
    responses=error_responses(ABSENT, INVALID, DOWN),
)
def show_conversation(
    conversation_id: str = ConversationId,
    all_branches: bool = Query(False, description="Every message of every branch, by id."),
    limit: int = Query(1000, ge=1, le=MAX_SHOWN, description="At most this many (the newest)."),
    store: RagStore = Depends(get_store),
) -> ConversationDetail:
    return store.chat.show(conversation_id, all_branches=all_branches, limit=limit)


@router.get(
    "/{conversation_id}/context",
    response_model=ChatContext,
    summary="The context of the next turn within a token budget, each citation resolved now",
    dependencies=READ,
    responses=error_responses(ABSENT, INVALID, DOWN),
)
def conversation_context(
    conversation_id: str = ConversationId,
    budget: int = Query(ge=1, le=MAX_BUDGET, description="The token budget."),
    store: RagStore = Depends(get_store),
) -> ChatContext:
    return store.chat.context(conversation_id, budget)


@messages_router.post(
    "/{message_id}/feedback",
    response_model=FeedbackInfo,
    summary="Rate a message (thumbs -1/1 or stars 1..5); one rating per message and source",
    dependencies=WRITE,
    responses=error_responses(*JSON_BODY, BAD_MESSAGE, DOWN),
)
def rate_message(
    body: FeedbackInput, message_id: int = MessageId, store: RagStore = Depends(get_store)
) -> FeedbackInfo:
    return store.chat.feedback(message_id, body)
