"""What the framework adapters need of a store, and how they get one.

The LangChain and LlamaIndex stores run over a local `RagStore` or a remote server through
`ragstore.client.RagStoreClient`; both hand out the same sub-facades with the same signatures. Typing the
backend as these Protocols (only the calls the adapters make) lets either fit without an adapter importing
the client, and keeps the contract the adapters rely on written down in one place. Nothing here imports a
framework.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ragstore.schemas import CollectionInfo, DocumentInfo, DocumentInput, IngestOutcome, SearchResponse

if TYPE_CHECKING:
    from ragstore.service import RagStore

__all__ = [
    "ChunkVectorLike",
    "CollectionsBackend",
    "Deletion",
    "DocumentsBackend",
    "RagStoreBackend",
    "SearchBackend",
    "open_backend",
    "open_store",
]


class Deletion(Protocol):
    """A bulk delete's answer (`store.documents.delete_many`)."""

    @property
    def deleted(self) -> int: ...


class ChunkVectorLike(Protocol):
    """One stored chunk vector (`store.documents.vectors`): MMR re-ranks the hits with them."""

    @property
    def chunk_id(self) -> int: ...

    @property
    def vector(self) -> Sequence[float]: ...


class CollectionsBackend(Protocol):
    def create(
        self,
        name: str,
        *,
        embedding_model: str | None = ...,
        dimension: int | None = ...,
        metric: str = ...,
        exist_ok: bool = ...,
    ) -> CollectionInfo: ...

    def get(self, name: str) -> CollectionInfo: ...


class DocumentsBackend(Protocol):
    def add(
        self, collection: str, documents: Sequence[DocumentInput], *, keep_duplicates: bool = ...
    ) -> list[IngestOutcome]: ...

    def find(
        self,
        collection: str,
        *,
        sources: Sequence[str] | None = ...,
        filter: dict[str, Any] | None = ...,
        limit: int = ...,
        offset: int = ...,
        with_chunks: bool = ...,
    ) -> Sequence[DocumentInfo]: ...

    def delete_many(
        self,
        collection: str,
        *,
        sources: Sequence[str] | None = ...,
        filter: dict[str, Any] | None = ...,
        everything: bool = ...,
    ) -> Deletion: ...

    def vectors(self, collection: str, chunk_ids: Sequence[int]) -> Sequence[ChunkVectorLike]: ...


class SearchBackend(Protocol):
    def __call__(
        self,
        collection: str,
        query: str | None = ...,
        *,
        vector: Sequence[float] | None = ...,
        k: int = ...,
        filter: dict[str, Any] | None = ...,
        mode: str | None = ...,
        min_score: float | None = ...,
        rrf_k: int | None = ...,
        dense_weight: float | None = ...,
        lexical_weight: float | None = ...,
        min_coverage: float | None = ...,
        fusion: str | None = ...,
    ) -> SearchResponse: ...


class RagStoreBackend(Protocol):
    """A `RagStore` or a `RagStoreClient`: read-only members, so each facade may be of its own class."""

    @property
    def collections(self) -> CollectionsBackend: ...

    @property
    def documents(self) -> DocumentsBackend: ...

    @property
    def search(self) -> SearchBackend: ...


def open_backend(
    store: RagStoreBackend | None, data_dir: str | Path | None, client: RagStoreBackend | None
) -> tuple[RagStoreBackend, RagStore | None]:
    """The backend to use, and what the adapter must close (a store it opened on `data_dir`; else None).

    Exactly one source: a store or client the caller passed stays the caller's to close.
    """
    sources = (("store", store), ("data_dir", data_dir), ("client", client))
    given = [name for name, value in sources if value is not None]
    if len(given) != 1:
        raise ValueError(f"give exactly one of store, data_dir or client (got {', '.join(given) or 'none'})")
    if store is not None:
        return store, None
    if client is not None:
        return client, None
    assert data_dir is not None
    opened = open_store(data_dir)
    return opened, opened


def open_store(data_dir: str | Path) -> RagStore:
    """A RagStore over `data_dir`, configured as the CLI would be (the environment and .env still apply: the
    embedding backend, the database) apart from the directory; the caller owns it and closes it."""
    from ragstore.config import load_settings
    from ragstore.service import RagStore

    return RagStore.open(load_settings(data_dir=Path(data_dir)))
