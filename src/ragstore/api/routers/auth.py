"""Logging in over HTTP: `/v1/auth/login`, `/refresh`, `/logout` (public, the body is the proof) and `/me`.

A login answers an access token (a JWT for `Authorization: Bearer`, RAGSTORE_ACCESS_TOKEN_TTL_S) and a
refresh token (RAGSTORE_REFRESH_TOKEN_TTL_S) that `/refresh` spends for new ones. A wrong e-mail, a wrong
password and a disabled account all answer the same 401; an account locked after repeated failures answers
429 with Retry-After (as does the per-address limit of RAGSTORE_RATE_LIMIT_LOGIN, the rate limiter's).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response

from ragstore.api.deps import get_store
from ragstore.api.errors import DOWN, JSON_BODY, error_responses
from ragstore.api.permissions import authenticated, public
from ragstore.api.user_auth import too_many
from ragstore.errors import TooManyRequests
from ragstore.schemas.users import LoginRequest, LoginResult, LogoutRequest, RefreshRequest, Whoami
from ragstore.security.principal import Principal
from ragstore.service import RagStore

router = APIRouter(prefix="/v1/auth", tags=["auth"])

BAD_LOGIN = (401, "The e-mail address or the password is wrong, or the account is disabled (one answer for all).")
LOCKED = (429, "Too many failed logins for this account, or from this address; Retry-After says when to retry.")
BAD_REFRESH = (401, "The refresh token is expired, revoked, already used or unknown: log in again.")
NOBODY = (401, "No access token, API key or admin session proves who is calling.")


def _client(request: Request) -> tuple[str, str]:
    address = request.client.host if request.client else ""
    return request.headers.get("user-agent", "")[:512], address[:64]


@router.post(
    "/login",
    response_model=LoginResult,
    summary="Log in with e-mail and password: an access token and a refresh token",
    responses=error_responses(*JSON_BODY, BAD_LOGIN, LOCKED, DOWN),
    dependencies=[Depends(public())],
)
def login(body: LoginRequest, request: Request, store: RagStore = Depends(get_store)) -> Any:
    user_agent, address = _client(request)
    try:
        return store.users.login(body.email, body.password, user_agent, address)
    except TooManyRequests as exc:
        return too_many(exc)


@router.post(
    "/refresh",
    response_model=LoginResult,
    summary="Spend a refresh token for new tokens (a spent one used again ends every session of its user)",
    responses=error_responses(*JSON_BODY, BAD_REFRESH, DOWN),
    dependencies=[Depends(public())],
)
def refresh(body: RefreshRequest, request: Request, store: RagStore = Depends(get_store)) -> LoginResult:
    user_agent, address = _client(request)
    return store.users.refresh(body.refresh_token, user_agent, address)


@router.post(
    "/logout",
    status_code=204,
    summary="End the session of a refresh token (204 also when it had ended already)",
    responses=error_responses(*JSON_BODY, DOWN),
    dependencies=[Depends(public())],
)
def logout(body: LogoutRequest, store: RagStore = Depends(get_store)) -> Response:
    store.users.logout(body.refresh_token)
    return Response(status_code=204)


@router.get(
    "/me",
    response_model=Whoami,
    summary="Who the caller is: the user of an access token, a key, or the local operator (auth off)",
    responses=error_responses(NOBODY, DOWN),
)
def me(store: RagStore = Depends(get_store), principal: Principal = Depends(authenticated())) -> Whoami:
    user = store.users.get(principal.user_id) if principal.user_id is not None else None
    grants = {collection: role.value for collection, role in principal.grants.items()}
    return Whoami(kind=principal.kind.value, name=principal.name, actor=principal.actor, grants=grants, user=user)
