"""What the LlamaIndex store needs of ragstore, as a Protocol: the local facade and the HTTP client both fit.

Typed structurally rather than as `RagStore | RagStoreClient` so that this adapter depends only on the calls
it makes (the same names and signatures on both), and a test or another transport can stand in.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ragstore.schemas import CollectionInfo, DocumentInfo, DocumentInput, IngestOutcome, SearchResponse

if TYPE_CHECKING:
    from ragstore.service import RagStore

__all__ = ["Backend", "open_store"]


class Deletion(Protocol):
    @property
    def deleted(self) -> int: ...


class ChunkVector(Protocol):
    @property
    def chunk_id(self) -> int: ...

    @property
    def vector(self) -> Sequence[float]: ...


class Collections(Protocol):
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


class Documents(Protocol):
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

    def vectors(self, collection: str, chunk_ids: Sequence[int]) -> Sequence[ChunkVector]: ...


class Search(Protocol):
    def __call__(
        self,
        collection: str,
        query: str | None = ...,
        *,
        vector: Sequence[float] | None = ...,
        k: int = ...,
        filter: dict[str, Any] | None = ...,
        mode: str | None = ...,
        dense_weight: float | None = ...,
        lexical_weight: float | None = ...,
        fusion: str | None = ...,
    ) -> SearchResponse: ...


class Backend(Protocol):
    """`RagStore` (service.py) or `ragstore.client.RagStoreClient`."""

    @property
    def collections(self) -> Collections: ...

    @property
    def documents(self) -> Documents: ...

    @property
    def search(self) -> Search: ...


def open_store(data_dir: str | Path) -> RagStore:
    """A RagStore over `data_dir`, configured as the CLI would be (environment and .env) apart from the
    directory; the caller owns it and closes it."""
    from ragstore.config import load_settings
    from ragstore.service import RagStore

    return RagStore.open(load_settings(data_dir=Path(data_dir)))
