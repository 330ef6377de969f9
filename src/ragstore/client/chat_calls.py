"""The conversation routes as calls and plans, shared by `Chat` and `AsyncChat`.

Inputs are the request models of `schemas.chat`, or their fields as keywords, checked here as the facade
checks them (`chat.service.checked`: one InvalidInput naming the field), so a bad field fails before any
request, with the facade's words.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from ragstore.client.calls import Call, Plan, nothing, parsed, segment
from ragstore.errors import InvalidInput
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
    MessageSearchResult,
    PurgeReport,
)

__all__ = [
    "add",
    "branch",
    "checked",
    "context",
    "create",
    "delete",
    "feedback",
    "get",
    "listing",
    "purge",
    "search",
    "show",
    "update",
]

M = TypeVar("M", bound=BaseModel)
PATH = "/v1/conversations"


def checked(model: type[M], given: M | None, fields: dict[str, Any]) -> M:
    """`given`, or a `model` built from `fields`; an invalid field is an InvalidInput naming it."""
    if given is not None:
        if fields:
            raise InvalidInput("pass either the request model or its fields, not both")
        return given
    try:
        return model.model_validate(fields)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'input'}: {e['msg']}" for e in exc.errors())
        raise InvalidInput(problems[:1000]) from exc


def _json(model: BaseModel) -> dict[str, Any]:
    """The fields the caller set (a PATCH must not send the ones it leaves alone), as JSON."""
    return model.model_dump(mode="json", exclude_unset=True)


def _one(conversation_id: str) -> str:
    return f"{PATH}/{segment(conversation_id)}"


def create(spec: ConversationCreate) -> Call[ConversationInfo]:
    return Call("POST", PATH, parsed(ConversationInfo), json=_json(spec))


def get(conversation_id: str) -> Call[ConversationInfo]:
    return Call("GET", _one(conversation_id), parsed(ConversationInfo), idempotent=True)


def listing(
    user: int | str | None,
    end_user_id: str | None,
    is_active: bool | None,
    collection: str | None,
    limit: int,
    cursor: str | None,
) -> Call[ConversationPage]:
    params = {
        "user": user,
        "end_user_id": end_user_id,
        "is_active": is_active,
        "collection": collection,
        "limit": limit,
        "cursor": cursor,
    }
    return Call("GET", PATH, parsed(ConversationPage), params=params, idempotent=True)


def update(conversation_id: str, change: ConversationUpdate) -> Call[ConversationInfo]:
    # A PATCH at a version: sent twice, the second is refused as stale (409), so it is not repeated.
    return Call("PATCH", _one(conversation_id), parsed(ConversationInfo), json=_json(change))


def branch(conversation_id: str, message_id: int) -> Plan[ConversationInfo]:
    """The API switches branches with a PATCH at the version read; read it first."""
    current = yield get(conversation_id)
    change = ConversationUpdate(version=current.version, active_message_id=message_id)
    switched: ConversationInfo = yield update(conversation_id, change)
    return switched


def delete(conversation_id: str) -> Call[None]:
    return Call("DELETE", _one(conversation_id), nothing, idempotent=True)


def add(conversation_id: str, message: MessageCreate) -> Call[MessageInfo]:
    return Call("POST", f"{_one(conversation_id)}/messages", parsed(MessageInfo), json=_json(message))


def show(conversation_id: str, all_branches: bool, limit: int) -> Call[ConversationDetail]:
    params = {"all_branches": all_branches, "limit": limit}
    return Call("GET", f"{_one(conversation_id)}/messages", parsed(ConversationDetail), params=params, idempotent=True)


def feedback(message_id: int, spec: FeedbackInput) -> Call[FeedbackInfo]:
    # One rating per message and source, the last one kept: sending it again changes nothing more.
    path = f"/v1/messages/{segment(message_id)}/feedback"
    return Call("POST", path, parsed(FeedbackInfo), json=_json(spec), idempotent=True)


def context(conversation_id: str, budget_tokens: int) -> Call[ChatContext]:
    path = f"{_one(conversation_id)}/context"
    return Call("GET", path, parsed(ChatContext), params={"budget": budget_tokens}, idempotent=True)


def search(
    query: str,
    k: int,
    user: int | str | None,
    conversation_id: str | None,
    role: str | None,
    since: datetime | None,
    until: datetime | None,
) -> Call[MessageSearchResult]:
    if isinstance(user, str):
        if not user.isascii() or not user.isdigit():
            raise InvalidInput(f"user must be a user id over HTTP, not {user!r} (look the id up with the users API)")
        user = int(user)
    params = {
        "q": query,
        "k": k,
        "user": user,
        "conversation_id": conversation_id,
        "role": role,
        "since": since.isoformat() if since is not None else None,
        "until": until.isoformat() if until is not None else None,
    }
    return Call("GET", "/v1/messages/search", parsed(MessageSearchResult), params=params, idempotent=True)


def purge(older_than: timedelta | None, dry_run: bool) -> Call[PurgeReport]:
    days: int | None = None
    if older_than is not None:
        if older_than.total_seconds() % 86_400:
            raise InvalidInput("over HTTP, older_than must be a whole number of days")
        days = int(older_than.total_seconds() // 86_400)
    body = {"older_than_days": days, "dry_run": dry_run}
    return Call("POST", "/v1/chat/purge", parsed(PurgeReport), json=body, idempotent=True)
