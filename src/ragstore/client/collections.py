"""`client.collections`: the collections routes, with the signatures of `store.collections`."""

from __future__ import annotations

import builtins

from ragstore.client.calls import Call, nothing, parsed, parsed_list, segment
from ragstore.client.http import AsyncHttp, SyncHttp
from ragstore.schemas import CollectionInfo

__all__ = ["AsyncCollections", "Collections"]

PATH = "/v1/collections"


def _create(
    name: str, description: str, embedding_model: str | None, dimension: int | None, metric: str, exist_ok: bool
) -> Call[CollectionInfo]:
    body = {"name": name, "description": description, "metric": metric, "exist_ok": exist_ok}
    if embedding_model is not None:
        body["embedding_model"] = embedding_model
    if dimension is not None:
        body["dimension"] = dimension
    # Idempotent only as get-or-create: a repeat of a plain create that did reach the server would be a 409.
    return Call("POST", PATH, parsed(CollectionInfo), json=body, idempotent=exist_ok)


def _list() -> Call[list[CollectionInfo]]:
    return Call("GET", PATH, parsed_list(CollectionInfo), idempotent=True)


def _get(name: str) -> Call[CollectionInfo]:
    return Call("GET", f"{PATH}/{segment(name)}", parsed(CollectionInfo), idempotent=True)


def _delete(name: str) -> Call[None]:
    return Call("DELETE", f"{PATH}/{segment(name)}", nothing, idempotent=True)


class Collections:
    """Create, list, read and drop collections on the server (as `store.collections`; over HTTP a key sees
    only the collections it may read)."""

    def __init__(self, http: SyncHttp) -> None:
        self._http = http

    def create(
        self,
        name: str,
        *,
        description: str = "",
        embedding_model: str | None = None,
        dimension: int | None = None,
        metric: str = "cosine",
        exist_ok: bool = False,
    ) -> CollectionInfo:
        return self._http.run(_create(name, description, embedding_model, dimension, metric, exist_ok))

    def list(self) -> builtins.list[CollectionInfo]:
        return self._http.run(_list())

    def get(self, name: str) -> CollectionInfo:
        return self._http.run(_get(name))

    def delete(self, name: str) -> None:
        self._http.run(_delete(name))


class AsyncCollections:
    def __init__(self, http: AsyncHttp) -> None:
        self._http = http

    async def create(
        self,
        name: str,
        *,
        description: str = "",
        embedding_model: str | None = None,
        dimension: int | None = None,
        metric: str = "cosine",
        exist_ok: bool = False,
    ) -> CollectionInfo:
        return await self._http.run(_create(name, description, embedding_model, dimension, metric, exist_ok))

    async def list(self) -> builtins.list[CollectionInfo]:
        return await self._http.run(_list())

    async def get(self, name: str) -> CollectionInfo:
        return await self._http.run(_get(name))

    async def delete(self, name: str) -> None:
        await self._http.run(_delete(name))
