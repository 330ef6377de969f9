"""Exact in-memory index: the reference implementation of the contract, and the test backend.

Brute force over a dense matrix: always exact, so the shared backend tests can compare an approximate
index against it. Nothing survives a restart; ragstore rebuilds it from SQL on open.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from ragstore.errors import InvalidInput
from ragstore.vectors.base import CollectionSpec, Ids, ReplicaIndex, SearchMode, VectorHit, VectorRecord, Vectors

__all__ = ["MemoryVectorIndex"]


def _normalise(vectors: Vectors) -> Vectors:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    normalised: Vectors = (vectors / norms).astype(np.float32, copy=False)
    return normalised


class _Sub:
    def __init__(self, dimension: int) -> None:
        self.dimension = dimension
        self.rows: dict[int, int] = {}
        self.ids = np.empty(0, dtype=np.int64)
        self.matrix = np.empty((0, dimension), dtype=np.float32)
        self.applied_seq = 0


class MemoryVectorIndex(ReplicaIndex[_Sub]):
    name = "memory"

    def ensure_collection(self, spec: CollectionSpec) -> None:
        with self._lock:
            sub = self._subs.get(spec.id)
            if sub is None:
                self._subs[spec.id] = _Sub(spec.dimension)
            elif sub.dimension != spec.dimension:
                raise InvalidInput(
                    f"collection {spec.id} has dimension {sub.dimension} in the index, not {spec.dimension}"
                )

    def drop_collection(self, collection_id: int) -> None:
        with self._lock:
            self._subs.pop(collection_id, None)

    def upsert(
        self, collection_id: int, ids: Ids, vectors: Vectors, records: Sequence[VectorRecord] | None = None
    ) -> None:
        with self._lock:
            sub = self._sub(collection_id)
            if vectors.ndim != 2 or vectors.shape[1] != sub.dimension:
                raise InvalidInput(f"vectors must have dimension {sub.dimension}, got shape {vectors.shape}")
            self.delete(collection_id, ids)
            base = len(sub.ids)
            sub.ids = np.concatenate([sub.ids, np.asarray(ids, dtype=np.int64)])
            sub.matrix = np.concatenate([sub.matrix, _normalise(np.asarray(vectors, dtype=np.float32))])
            for offset, key in enumerate(ids.tolist()):
                sub.rows[int(key)] = base + offset

    def delete(self, collection_id: int, ids: Ids) -> None:
        with self._lock:
            sub = self._subs.get(collection_id)
            if sub is None:
                return
            gone = {int(i) for i in ids.tolist()} & sub.rows.keys()
            if not gone:
                return
            keep = np.array([int(i) not in gone for i in sub.ids.tolist()], dtype=bool)
            sub.ids, sub.matrix = sub.ids[keep], sub.matrix[keep]
            sub.rows = {int(key): row for row, key in enumerate(sub.ids.tolist())}

    def search(
        self, collection_id: int, vector: Vectors, k: int, allowed_ids: Sequence[int] | None = None
    ) -> list[VectorHit]:
        with self._lock:
            sub = self._subs.get(collection_id)
            if sub is None or not len(sub.ids):
                return []
            ids, matrix = sub.ids, sub.matrix
            if allowed_ids is not None:
                rows = [sub.rows[i] for i in allowed_ids if i in sub.rows]
                ids, matrix = ids[rows], matrix[rows]
        query = _normalise(np.asarray(vector, dtype=np.float32).reshape(1, -1))[0]
        scores = matrix @ query
        top = np.argsort(-scores, kind="stable")[:k]
        return [VectorHit(int(ids[i]), float(scores[i])) for i in top]

    def count(self, collection_id: int) -> int:
        sub = self._subs.get(collection_id)
        return 0 if sub is None else len(sub.ids)

    def iter_ids(self, collection_id: int, batch_size: int = 10_000) -> Iterator[Ids]:
        sub = self._subs.get(collection_id)
        if sub is None:
            return
        ids = sub.ids.copy()
        for start in range(0, len(ids), batch_size):
            yield ids[start : start + batch_size]

    def get(self, collection_id: int, ids: Ids) -> tuple[Ids, Vectors]:
        with self._lock:
            sub = self._subs.get(collection_id)
            if sub is None:
                return np.empty(0, np.int64), np.empty((0, 0), np.float32)
            found = [int(i) for i in np.asarray(ids).tolist() if int(i) in sub.rows]
            return np.asarray(found, dtype=np.int64), sub.matrix[[sub.rows[i] for i in found]]

    def collection_ids(self) -> list[int]:
        return sorted(self._subs)

    def dimension(self, collection_id: int) -> int | None:
        sub = self._subs.get(collection_id)
        return None if sub is None else sub.dimension

    def is_durable(self) -> bool:
        return False

    def search_mode(self, collection_id: int) -> SearchMode:
        return "exact"  # brute force, always
