"""The vector index of a store opened only to read what SQL holds (`RagStore.open(recover=False)`).

Listing collections, documents or reports needs no vector index, and opening a real one means loading every
collection's files (and the vector library) to recover them. A store opened for reading holds this stand-in
instead: it answers nothing and refuses every use, so a search or write through such a store fails loudly
rather than running against an index that was never brought level with SQL.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import NoReturn

from ragstore.errors import Unavailable
from ragstore.vectors.base import CollectionSpec, Ids, VectorHit, VectorIndex, VectorRecord, Vectors

__all__ = ["UnopenedIndex"]


class UnopenedIndex(VectorIndex):
    name = "unopened"

    def __init__(self, backend: str) -> None:
        self.backend = backend  # the backend a normal open would use, for messages

    def _refuse(self) -> NoReturn:
        raise Unavailable(
            f"this store was opened without its {self.backend} vector index (for reading listings and reports); "
            "open it normally to search or write"
        )

    def ensure_collection(self, spec: CollectionSpec) -> None:
        self._refuse()

    def drop_collection(self, collection_id: int) -> None:
        self._refuse()

    def upsert(
        self, collection_id: int, ids: Ids, vectors: Vectors, records: Sequence[VectorRecord] | None = None
    ) -> None:
        self._refuse()

    def delete(self, collection_id: int, ids: Ids) -> None:
        self._refuse()

    def search(
        self, collection_id: int, vector: Vectors, k: int, allowed_ids: Sequence[int] | None = None
    ) -> list[VectorHit]:
        self._refuse()

    def count(self, collection_id: int) -> int:
        self._refuse()

    def iter_ids(self, collection_id: int, batch_size: int = 10_000) -> Iterator[Ids]:
        self._refuse()

    def get(self, collection_id: int, ids: Ids) -> tuple[Ids, Vectors]:
        self._refuse()

    def collection_ids(self) -> list[int]:
        self._refuse()

    def dimension(self, collection_id: int) -> int | None:
        self._refuse()

    def persist(self) -> None:
        self._refuse()  # a backup through such a store would carry no index: refused, not silently partial

    def close(self) -> None:
        """Nothing was opened, so nothing is saved."""
