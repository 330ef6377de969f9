"""Dense search: the vector index proposes, SQL disposes.

A vector hit is shown only if SQL holds its chunk visible (db/visibility.py); anything else (an orphan
vector, a chunk still pending or being deleted) is dropped and counted. When drops leave fewer
than asked, the index is asked again for more, so a few orphans never shorten a result list. A metadata
filter selects the allowed chunk ids in SQL and the index searches only among them.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import ColumnElement

from ragstore.db.engine import Database
from ragstore.db.visibility import visible_chunk_ids
from ragstore.search.rows import ChunkRow, read_rows
from ragstore.vectors.base import VectorIndex

__all__ = ["DenseSearcher", "SearchCounters"]

log = logging.getLogger(__name__)
MAX_ROUNDS = 4


@dataclass
class SearchCounters:
    searches: int = 0
    dropped_hits: int = 0
    orphan_hits: int = 0


class DenseSearcher:
    def __init__(self, db: Database, index: VectorIndex) -> None:
        self.db = db
        self.index = index
        self.counters = SearchCounters()
        self._lock = threading.Lock()

    def allowed_ids(self, collection_id: int, condition: ColumnElement[bool]) -> list[int]:
        """Ids of the visible chunks whose document passes the filter: the only ids the index may return."""
        with self.db.read() as s:
            return [int(i) for i in s.scalars(visible_chunk_ids(collection_id, condition))]

    def search(
        self, collection_id: int, vector: NDArray[np.float32], n: int, allowed: list[int] | None = None
    ) -> tuple[list[tuple[ChunkRow, float]], int]:
        """Up to `n` visible chunks nearest to `vector`, best first, with their similarity; and the number of
        vector hits dropped on the way."""
        if allowed is not None and not allowed:
            return [], 0
        fetch = n
        dropped = orphans = 0
        found: list[tuple[ChunkRow, float]] = []
        for _ in range(MAX_ROUNDS):
            vector_hits = self.index.search(collection_id, vector, fetch, allowed)
            rows = read_rows(self.db, [h.id for h in vector_hits])
            found = []
            dropped = orphans = 0
            for vh in vector_hits:
                row = rows.get(vh.id)
                if row is None or not row.visible:
                    dropped += 1
                    orphans += int(row is None)
                    continue
                found.append((row, float(vh.score)))
            if len(found) >= n or len(vector_hits) < fetch:
                break
            fetch *= 4
        with self._lock:
            self.counters.searches += 1
            self.counters.dropped_hits += dropped
            self.counters.orphan_hits += orphans
        if orphans:
            log.warning(
                "search dropped %d vector hits with no chunk row (orphans) in collection %d", orphans, collection_id
            )
        return found[:n], dropped
