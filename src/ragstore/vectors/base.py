"""The VectorIndex contract: what every vector backend must do, method by method.

An index is derived data. It is keyed by chunk id, holds one sub-index per ragstore collection, and can be
dropped and rebuilt from SQL at any time. Every mutating method is idempotent, because the outbox replays
operations after a crash and an operation may reach the index twice.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

__all__ = ["CollectionSpec", "VectorHit", "VectorIndex", "VectorRecord"]

Vectors = NDArray[np.float32]
Ids = NDArray[np.int64]


@dataclass(frozen=True)
class CollectionSpec:
    id: int
    dimension: int
    metric: str = "cosine"


@dataclass(frozen=True)
class VectorHit:
    id: int
    score: float  # cosine similarity: higher is closer


@dataclass(frozen=True)
class VectorRecord:
    """What a backend may keep beside a vector, for people and tools that read the vector store directly.

    ragstore never trusts these fields (SQL decides what a search shows); Milvus and Chroma store them as
    scalar fields and metadata, the in-process indexes ignore them.
    """

    document_id: int
    content_hash: str
    metadata: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class VectorIndex(Protocol):
    name: str
    # True when one index serves every process (a Milvus or Chroma store): an operation applied by any
    # process is in it, so no process replays another's work. False for a per-process replica.
    shared: bool
    # True when upsert uses `records` (the applier reads document ids and metadata only for such backends).
    wants_records: bool

    def ensure_collection(self, spec: CollectionSpec) -> None:
        """Create the collection's sub-index if absent; a no-op if it exists with the same dimension."""

    def drop_collection(self, collection_id: int) -> None:
        """Remove the sub-index and its files. Idempotent: dropping a missing collection does nothing."""

    def upsert(
        self, collection_id: int, ids: Ids, vectors: Vectors, records: Sequence[VectorRecord] | None = None
    ) -> None:
        """Insert or replace vectors by id (with `records` aligned to ids, if given). Idempotent.

        Raises InvalidInput on a dimension mismatch, Unavailable when the store cannot be reached.
        """

    def delete(self, collection_id: int, ids: Ids) -> None:
        """Remove vectors by id. Idempotent: missing ids are ignored."""

    def search(
        self, collection_id: int, vector: Vectors, k: int, allowed_ids: Sequence[int] | None = None
    ) -> list[VectorHit]:
        """Up to k nearest vectors, best first; restricted to `allowed_ids` when given."""

    def count(self, collection_id: int) -> int:
        """Number of vectors in the collection (0 if it does not exist)."""

    def iter_ids(self, collection_id: int, batch_size: int = 10_000) -> Iterator[Ids]:
        """Every id in the collection, in batches, for consistency checks."""

    def get(self, collection_id: int, ids: Ids) -> tuple[Ids, Vectors]:
        """The stored vectors of those ids that are present, as (ids, vectors); missing ids are left out."""

    def collection_ids(self) -> list[int]:
        """Every collection the index holds (open or on disk), including ones SQL no longer knows."""

    def dimension(self, collection_id: int) -> int | None:
        """The dimension the index holds for a collection, or None if it holds no such collection."""

    def applied_seq(self, collection_id: int) -> int:
        """Highest outbox operation id whose effect is durable in this index (0 = nothing known)."""

    def mark_applied(self, collection_id: int, seq: int) -> None:
        """Record that operation `seq` is applied; becomes durable at the next persist()."""

    def is_durable(self) -> bool:
        """False for an index that keeps nothing across restarts (it is rebuilt from SQL on open)."""

    def persist(self) -> None:
        """Make every applied change durable (and the applied_seq with it). Cheap when nothing changed."""

    def close(self) -> None:
        """Persist and release resources."""
