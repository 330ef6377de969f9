"""Users, for admins: `/v1/users` lists and creates them; a user's `disable`, `password` and `erase` change them.

Every change is audited; disabling a user or setting a password ends all of that user's sessions.
Passwords go in request bodies only (never a URL, which logs would keep) and never come back out.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Path

from ragstore.api.deps import get_store
from ragstore.api.errors import DOWN, INVALID, JSON_BODY, error_responses
from ragstore.api.permissions import require
from ragstore.schemas.chat import ErasureReport
from ragstore.schemas.users import PasswordChange, UserCreate, UserInfo
from ragstore.security.principal import Role
from ragstore.service import RagStore
from ragstore.valid_text import INT64_MAX

router = APIRouter(prefix="/v1/users", tags=["users"], dependencies=[Depends(require(Role.ADMIN))])

WHO = (
    (401, "No access token, API key or admin session proves who is calling."),
    (403, "The caller is not an admin."),
)
TAKEN = (409, "A user with this e-mail address exists already (e-mail addresses are compared without case).")
UNKNOWN = (404, "No user has this id.")
UserId = Path(..., ge=1, le=INT64_MAX, description="The user's id.")


@router.get(
    "",
    response_model=list[UserInfo],
    summary="Every user, oldest first",
    responses=error_responses(*WHO, DOWN),
)
def list_users(store: RagStore = Depends(get_store)) -> list[UserInfo]:
    return store.users.list()


@router.post(
    "",
    status_code=201,
    response_model=UserInfo,
    summary="Create a user (active) with a password",
    responses=error_responses(*JSON_BODY, *WHO, TAKEN, DOWN),
)
def create_user(body: UserCreate, store: RagStore = Depends(get_store)) -> UserInfo:
    return store.users.create(body.email, body.password, display_name=body.display_name, role=body.role)


@router.get(
    "/{user_id}",
    response_model=UserInfo,
    summary="One user",
    responses=error_responses(INVALID, *WHO, UNKNOWN, DOWN),
)
def get_user(user_id: int = UserId, store: RagStore = Depends(get_store)) -> UserInfo:
    return store.users.get(user_id)


@router.post(
    "/{user_id}/disable",
    response_model=UserInfo,
    summary="Disable a user: no more logins, every session ended",
    responses=error_responses(INVALID, *WHO, UNKNOWN, DOWN),
)
def disable_user(user_id: int = UserId, store: RagStore = Depends(get_store)) -> UserInfo:
    return store.users.disable(user_id)


@router.post(
    "/{user_id}/password",
    response_model=UserInfo,
    summary="Set a user's password: every session of theirs ended, a lockout lifted",
    responses=error_responses(*JSON_BODY, *WHO, UNKNOWN, DOWN),
)
def set_password(body: PasswordChange, user_id: int = UserId, store: RagStore = Depends(get_store)) -> UserInfo:
    return store.users.set_password(user_id, body.password)


@router.post(
    "/{user_id}/erase",
    response_model=ErasureReport,
    summary="Erase a user and everything of theirs (conversations, feedback, sessions, keys); audited",
    responses=error_responses(INVALID, *WHO, UNKNOWN, DOWN),
)
def erase_user(user_id: int = UserId, store: RagStore = Depends(get_store)) -> ErasureReport:
    return store.chat.erase_user(user_id)
