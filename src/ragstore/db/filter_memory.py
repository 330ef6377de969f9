"""What searches remember about a filter between calls: its measured share, and its allowed ids per version.

Filtered dense search (search/dense.py) and the in-memory lexical index (lexical/memory.py) both pick a
strategy by how much of a collection a filter passes, measured on its first search, and both keep the
allowed ids of a rare filter until the collection's next write. The filter's compiled condition object is
kept beside each entry and compared by identity: the key holds only its `id()`, which Python could reuse
for another object once the first is gone.
"""

from __future__ import annotations

import threading

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import ColumnElement

__all__ = ["FilterMemory"]

Key = tuple[int, int]  # (collection id, id of the filter's condition object)
MAX_SHARES = 1024


class FilterMemory:
    def __init__(self, max_ids: int) -> None:
        self.max_ids = max_ids  # allowed ids kept over every filter and collection (8 bytes each)
        self._shares: dict[Key, tuple[ColumnElement[bool], float]] = {}
        self._allowed: dict[Key, tuple[ColumnElement[bool], int, NDArray[np.int64]]] = {}
        self._lock = threading.Lock()

    def share(self, key: Key, condition: ColumnElement[bool]) -> float | None:
        """The filter's share of the collection as last measured; None if never measured."""
        found = self._shares.get(key)
        return found[1] if found is not None and found[0] is condition else None

    def remember(self, key: Key, condition: ColumnElement[bool], share: float) -> None:
        with self._lock:
            self._shares[key] = (condition, share)
            while len(self._shares) > MAX_SHARES:
                self._shares.pop(next(iter(self._shares)))

    def kept(self, key: Key, condition: ColumnElement[bool], version: int) -> NDArray[np.int64] | None:
        """The filter's allowed ids (sorted) if they were listed at this write version."""
        found = self._allowed.get(key)
        if found is None or found[0] is not condition or found[1] != version:
            return None
        return found[2]

    def keep(self, key: Key, condition: ColumnElement[bool], version: int, ids: NDArray[np.int64]) -> None:
        """Keep a filter's allowed ids (sorted) until the version moves; the oldest lists leave past max_ids."""
        with self._lock:
            self._allowed.pop(key, None)
            self._allowed[key] = (condition, version, ids)
            while sum(len(v[2]) for v in self._allowed.values()) > self.max_ids and len(self._allowed) > 1:
                self._allowed.pop(next(iter(self._allowed)))
