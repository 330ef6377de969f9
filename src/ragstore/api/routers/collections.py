from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Response
from pydantic import BaseModel, ConfigDict, Field

from ragstore.api.deps import get_store
from ragstore.api.errors import DOWN, INVALID, JSON_BODY, error_responses
from ragstore.api.permissions import readable, require
from ragstore.errors import NotFound
from ragstore.schemas import CollectionInfo
from ragstore.schemas.core import StorableStr
from ragstore.security.principal import Principal, Role
from ragstore.service import RagStore

router = APIRouter(prefix="/v1/collections", tags=["collections"])

UNKNOWN = (404, "The collection does not exist.")
TAKEN = (
    409,
    "A collection of this name exists (with `exist_ok`: with other settings, named in the error) or is being "
    "deleted; nothing changed.",
)
EXISTS: dict[int | str, dict[str, Any]] = {
    200: {"model": CollectionInfo, "description": "`exist_ok` and the collection exists with these settings."}
}


class CollectionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: StorableStr = Field(min_length=1, max_length=128)
    description: StorableStr = Field("", max_length=10_000)
    embedding_model: StorableStr | None = Field(
        None, description="Default: the server's embedder. Another name means you send vectors."
    )
    dimension: int | None = Field(None, ge=1, le=16_384)
    metric: StorableStr = "cosine"
    exist_ok: bool = Field(
        False, description="An existing collection with the same settings is answered with 200 instead of 409."
    )


@router.get(
    "",
    response_model=list[CollectionInfo],
    summary="List the collections the caller may read, with their counts",
    responses=error_responses(DOWN),
)
def list_collections(
    store: RagStore = Depends(get_store), principal: Principal = Depends(require(Role.READ, on_any=True))
) -> list[CollectionInfo]:
    collections = store.collections.list()
    shown = readable(principal, [c.name for c in collections])
    return [c for c in collections if c.name in shown]


@router.post(
    "",
    response_model=CollectionInfo,
    status_code=201,
    summary="Create a collection",
    dependencies=[Depends(require(Role.ADMIN))],
    responses={**EXISTS, 201: {"description": "Created."}, **error_responses(*JSON_BODY, TAKEN, DOWN)},
)
def create_collection(
    body: CollectionCreate, response: Response, store: RagStore = Depends(get_store)
) -> CollectionInfo:
    """Create a collection; with `exist_ok`, get it if it exists with the same settings (get-or-create)."""
    existed = body.exist_ok and _exists(store, body.name)
    info = store.collections.create(
        body.name,
        description=body.description,
        embedding_model=body.embedding_model,
        dimension=body.dimension,
        metric=body.metric,
        exist_ok=body.exist_ok,
    )
    if existed:
        response.status_code = 200
    return info


def _exists(store: RagStore, name: str) -> bool:
    try:
        store.collections.get(name)
    except NotFound:
        return False
    return True


@router.get(
    "/{name}",
    response_model=CollectionInfo,
    summary="One collection with its counts",
    responses=error_responses(UNKNOWN, INVALID, DOWN),
    dependencies=[Depends(require(Role.READ, "name"))],
)
def get_collection(name: str, store: RagStore = Depends(get_store)) -> CollectionInfo:
    return store.collections.get(name)


@router.delete(
    "/{name}",
    status_code=204,
    summary="Delete a collection, its documents and vectors",
    dependencies=[Depends(require(Role.ADMIN, "name"))],
    responses=error_responses(UNKNOWN, INVALID, DOWN),
)
def delete_collection(name: str, store: RagStore = Depends(get_store)) -> Response:
    store.collections.delete(name)
    return Response(status_code=204)
