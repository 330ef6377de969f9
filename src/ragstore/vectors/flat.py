"""A contiguous copy of one collection's vectors, for exact scans over the few chunks a filter allows.

usearch's Python API takes no filter, and asking it for the vectors of 1,000 allowed keys costs about 8 µs
a key (bench/filtered_search.py: 8 ms, then 44 ms for 10,000), longer than the search itself. This copy
keeps the vectors row by row in half precision beside a direct-address table from key to row, so the
allowed rows are gathered with one fancy index and scored by usearch's SIMD brute force.
Its cost is memory: 2 bytes a dimension a vector (77 MB for 100,000 vectors of 384 dimensions), and it is
built only for a collection that a selective filter searches.

Keys are chunk ids: allocated in increasing order and never reused, so the table from key to row spans
about as many entries as the collection's chunks (4 bytes each) when its chunks were written together.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

__all__ = ["FlatVectors"]

_NONE = -1


class FlatVectors:
    """Row per live key; deleted rows stay as holes until the holes are a quarter of the rows (then packed).

    Not thread-safe: the embedded index calls it under its own lock."""

    def __init__(self, dimension: int, dtype: str = "f16") -> None:
        self.dimension = dimension
        # i8 for an 8-bit index (RAGSTORE_INDEX_DTYPE=i8): the copy then costs what the index saves no more
        # than a quarter of f32, and its scores are approximate like the index's (search re-ranks them).
        self._dtype = np.int8 if dtype == "i8" else np.float16
        self._matrix = np.empty((0, dimension), dtype=self._dtype)
        self._keys = np.empty(0, dtype=np.int64)  # row -> key, _NONE for a hole
        self._rows = 0
        self._holes = 0
        self._base = 0
        self._row_of = np.empty(0, dtype=np.int32)  # key - base -> row, _NONE where absent

    def __len__(self) -> int:
        return self._rows - self._holes

    @property
    def nbytes(self) -> int:
        return int(self._matrix.nbytes + self._keys.nbytes + self._row_of.nbytes)

    # -- writes ----------------------------------------------------------------------------------------------
    def upsert(self, keys: NDArray[np.int64], vectors: NDArray[np.float32]) -> None:
        keys = np.asarray(keys, dtype=np.int64)
        if not len(keys):
            return
        self._cover(int(keys.min()), int(keys.max()))
        rows = self._row_of[keys - self._base]
        new = rows == _NONE
        count = int(new.sum())
        if count:
            self._reserve(self._rows + count)
            rows[new] = np.arange(self._rows, self._rows + count, dtype=np.int32)
            self._keys[self._rows : self._rows + count] = keys[new]
            self._row_of[keys[new] - self._base] = rows[new]
            self._rows += count
        vectors = np.asarray(vectors, dtype=np.float32)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        norms[norms == 0] = 1.0
        self._matrix[rows] = self._stored(vectors / norms)

    def delete(self, keys: NDArray[np.int64]) -> None:
        keys = np.asarray(keys, dtype=np.int64)
        inside = (keys >= self._base) & (keys < self._base + len(self._row_of))
        keys = keys[inside]
        rows = self._row_of[keys - self._base]
        present = rows != _NONE
        self._keys[rows[present]] = _NONE
        self._row_of[keys[present] - self._base] = _NONE
        self._holes += int(present.sum())
        if self._holes > 1024 and self._holes * 4 > self._rows:
            self._pack()

    # -- reads -----------------------------------------------------------------------------------------------
    def search(
        self, query: NDArray[np.float32], k: int, allowed: Sequence[int]
    ) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
        """The k allowed keys most similar to `query` by cosine, best first, with their similarities."""
        keys = np.asarray(allowed, dtype=np.int64)
        inside = (keys >= self._base) & (keys < self._base + len(self._row_of))
        rows = self._row_of[keys[inside] - self._base]
        rows = rows[rows != _NONE]
        if not len(rows) or k <= 0:
            return np.empty(0, np.int64), np.empty(0, np.float32)
        # usearch's SIMD brute force reads half precision as it is (numpy converts it at ~3 ms for 1,000
        # rows of 384, six times the scan), on this thread: a pool for 1,000 rows costs more than it saves.
        from usearch.index import search as exact_search

        unit = self._stored((query / (float(np.linalg.norm(query)) or 1.0)).reshape(1, -1))[0]
        found = exact_search(self._matrix[rows], unit, min(k, len(rows)), "cos", exact=True, threads=1)
        picked = np.asarray(found.keys, dtype=np.int64).reshape(-1)
        similarity = 1.0 - np.asarray(found.distances, dtype=np.float32).reshape(-1)
        return self._keys[rows[picked]], similarity

    # -- storage ---------------------------------------------------------------------------------------------
    def _stored(self, unit: NDArray[np.float32]) -> NDArray[np.generic]:
        """Unit vectors in the copy's precision (8-bit: components scaled by 127, as usearch's own i8)."""
        stored: NDArray[np.generic]
        if self._dtype is np.int8:
            stored = np.clip(np.rint(unit * 127.0), -127, 127).astype(np.int8)
        else:
            stored = unit.astype(np.float16)
        return stored

    def _cover(self, low: int, high: int) -> None:
        """Grow the key table to take keys low..high (ids grow, so mostly at the top; by half again)."""
        if not len(self._row_of):
            self._base = low
        start, end = min(self._base, low), max(self._base + len(self._row_of), high + 1)
        if start == self._base and end <= self._base + len(self._row_of):
            return
        if end > self._base + len(self._row_of):
            end = max(end, self._base + len(self._row_of) + len(self._row_of) // 2)
        table = np.full(end - start, _NONE, dtype=np.int32)
        offset = self._base - start
        table[offset : offset + len(self._row_of)] = self._row_of
        self._base, self._row_of = start, table

    def _reserve(self, rows: int) -> None:
        if rows <= len(self._keys):
            return
        capacity = max(rows, len(self._keys) + len(self._keys) // 2, 1024)
        matrix = np.empty((capacity, self.dimension), dtype=self._dtype)
        matrix[: self._rows] = self._matrix[: self._rows]
        keys = np.full(capacity, _NONE, dtype=np.int64)
        keys[: self._rows] = self._keys[: self._rows]
        self._matrix, self._keys = matrix, keys

    def _pack(self) -> None:
        live = np.flatnonzero(self._keys[: self._rows] != _NONE)
        self._matrix = np.ascontiguousarray(self._matrix[live])
        self._keys = self._keys[live].copy()
        self._rows, self._holes = len(live), 0
        self._row_of[:] = _NONE
        self._row_of[self._keys - self._base] = np.arange(len(live), dtype=np.int32)
