"""Dense search: the vector index proposes, SQL disposes.

A vector hit is shown only if SQL holds its chunk as `indexed` in an active document; anything else
(an orphan vector, a chunk still pending or being deleted) is dropped and counted. When drops leave fewer
than k results, the index is asked again for more, so a few orphans never shorten a result list.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import select

from ragstore.db.engine import Database
from ragstore.db.models import ChunkStatus, Document, DocumentChunk
from ragstore.schemas import SearchHit
from ragstore.search.filters import compile_filter
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

    def _allowed_ids(self, collection_id: int, filter_spec: dict[str, Any]) -> list[int]:
        condition = compile_filter(filter_spec)
        with self.db.read() as s:
            return [
                int(i)
                for i in s.scalars(
                    select(DocumentChunk.id)
                    .join(Document, Document.id == DocumentChunk.document_id)
                    .where(
                        DocumentChunk.collection_id == collection_id,
                        DocumentChunk.status == ChunkStatus.INDEXED,
                        Document.status == "active",
                        condition,  # type: ignore[arg-type]
                    )
                )
            ]

    def search(
        self, collection_id: int, vector: NDArray[np.float32], k: int, filter_spec: dict[str, Any] | None = None
    ) -> tuple[list[SearchHit], int]:
        allowed = self._allowed_ids(collection_id, filter_spec) if filter_spec else None
        if allowed is not None and not allowed:
            return [], 0
        fetch = k
        dropped = 0
        hits: list[SearchHit] = []
        for _ in range(MAX_ROUNDS):
            vector_hits = self.index.search(collection_id, vector, fetch, allowed)
            rows = self._rows([h.id for h in vector_hits])
            hits = []
            dropped = 0
            orphans = 0
            for vh in vector_hits:
                row = rows.get(vh.id)
                if row is None or row[0].status != ChunkStatus.INDEXED or row[1].status != "active":
                    dropped += 1
                    orphans += int(row is None)
                    continue
                chunk, doc = row
                hits.append(
                    SearchHit(
                        chunk_id=chunk.id,
                        document_id=doc.id,
                        score=round(vh.score, 6),
                        text=chunk.text,
                        ordinal=chunk.ordinal,
                        source_uri=doc.source_uri,
                        title=doc.title,
                        metadata=dict(doc.metadata_ or {}),
                    )
                )
            if len(hits) >= k or len(vector_hits) < fetch:
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
        return hits[:k], dropped

    def _rows(self, ids: list[int]) -> dict[int, tuple[DocumentChunk, Document]]:
        if not ids:
            return {}
        with self.db.read() as s:
            result = s.execute(
                select(DocumentChunk, Document)
                .join(Document, Document.id == DocumentChunk.document_id)
                .where(DocumentChunk.id.in_(ids))
            ).all()
        return {int(c.id): (c, d) for c, d in result}
