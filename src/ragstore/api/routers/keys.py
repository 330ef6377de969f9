"""API keys over HTTP (admin keys only): create, list, revoke, rotate, grant and deny. Each change is audited
by `store.keys` in the transaction that makes it; a new key's text appears in its 201 answer only."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Path
from fastapi.concurrency import run_in_threadpool

from ragstore.api.deps import get_store
from ragstore.api.errors import DOWN, INVALID, JSON_BODY, error_responses
from ragstore.api.permissions import require
from ragstore.schemas.core import INT64_MAX
from ragstore.schemas.security import ApiKeyInfo, CreatedKey, KeyCreate, KeyGrantRequest
from ragstore.security.principal import Role
from ragstore.service import RagStore

router = APIRouter(prefix="/v1/keys", tags=["keys"], dependencies=[Depends(require(Role.ADMIN))])

NO_KEY = (404, "No API key has this id.")
NO_GRANT = (404, "No API key has this id, or it holds no grant on this collection.")
ENDED = (409, "The key is revoked or expired: create a new one instead of rotating it.")
KEY_ID = Path(ge=1, le=INT64_MAX, description="The key's number (`id` in its listing).")


@router.post(
    "",
    response_model=CreatedKey,
    status_code=201,
    summary="Create a key; the answer holds its text, shown this once",
    responses=error_responses(*JSON_BODY, DOWN),
)
async def create_key(body: KeyCreate, store: RagStore = Depends(get_store)) -> CreatedKey:
    return await run_in_threadpool(
        lambda: store.keys.create(body.name, body.role, body.collections, expires_in=body.expires_in_s)
    )


@router.get(
    "",
    response_model=list[ApiKeyInfo],
    summary="Every key with its grants and dates (never a secret)",
    responses=error_responses(DOWN),
)
async def list_keys(store: RagStore = Depends(get_store)) -> list[ApiKeyInfo]:
    return await run_in_threadpool(store.keys.list)


@router.post(
    "/{key}/revoke",
    response_model=ApiKeyInfo,
    summary="Revoke a key now (revoking it again changes nothing)",
    responses=error_responses(NO_KEY, INVALID, DOWN),
)
async def revoke_key(key: int = KEY_ID, store: RagStore = Depends(get_store)) -> ApiKeyInfo:
    return await run_in_threadpool(store.keys.revoke, key)


@router.post(
    "/{key}/rotate",
    response_model=CreatedKey,
    status_code=201,
    summary="A new key with the same grants; the old one expires after RAGSTORE_KEY_ROTATION_GRACE_S",
    responses=error_responses(NO_KEY, ENDED, INVALID, DOWN),
)
async def rotate_key(key: int = KEY_ID, store: RagStore = Depends(get_store)) -> CreatedKey:
    return await run_in_threadpool(store.keys.rotate, key)


@router.post(
    "/{key}/grants",
    response_model=ApiKeyInfo,
    summary="Give the key a role on a collection (or on every collection, *)",
    responses=error_responses(*JSON_BODY, NO_KEY, DOWN),
)
async def grant(body: KeyGrantRequest, key: int = KEY_ID, store: RagStore = Depends(get_store)) -> ApiKeyInfo:
    return await run_in_threadpool(store.keys.grant, key, body.collection, body.role)


@router.delete(
    "/{key}/grants/{collection}",
    response_model=ApiKeyInfo,
    summary="Take away what the key holds on a collection",
    responses=error_responses(NO_GRANT, INVALID, DOWN),
)
async def deny(
    collection: str = Path(min_length=1, max_length=128),
    key: int = KEY_ID,
    store: RagStore = Depends(get_store),
) -> ApiKeyInfo:
    return await run_in_threadpool(store.keys.deny, key, collection)
