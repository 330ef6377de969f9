"""The VectorIndex contract: what every vector backend must do, method by method.

An index is derived data. It is keyed by chunk id, holds one sub-index per ragstore collection, and can be
dropped and rebuilt from SQL at any time. Every mutating method is idempotent, because the outbox replays
operations after a crash and an operation may reach the index twice.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

__all__ = ["CollectionSpec", "VectorHit", "VectorIndex"]

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


@runtime_checkable
class VectorIndex(Protocol):
    name: str

    def ensure_collection(self, spec: CollectionSpec) -> None:
        """Create the collection's sub-index if absent; a no-op if it exists with the same dimension."""

    def drop_collection(self, collection_id: int) -> None:
        """Remove the sub-index and its files. Idempotent: dropping a missing collection does nothing."""

    def upsert(self, collection_id: int, ids: Ids, vectors: Vectors) -> None:
        """Insert or replace vectors by id. Idempotent. Raises InvalidInput on a dimension mismatch."""

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
