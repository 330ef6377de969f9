"""Dense search: the vector index proposes, SQL disposes.

A vector hit is shown only if SQL holds its chunk as `indexed` in an active document; anything else
(an orphan vector, a chunk still pending or being deleted) is dropped and counted. When drops leave fewer
than k results, the index is asked again for more, so a few orphans never shorten a result list.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import bindparam, select

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
        condition = compile_filter(filter_spec, postgres=not self.db.is_sqlite)
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
        dropped = orphans = 0
        hits: list[SearchHit] = []
        for _ in range(MAX_ROUNDS):
            vector_hits = self.index.search(collection_id, vector, fetch, allowed)
            rows = self._rows([h.id for h in vector_hits])
            hits = []
            dropped = orphans = 0
            for vh in vector_hits:
                row = rows.get(vh.id)
                if row is None or row.chunk_status != ChunkStatus.INDEXED or row.doc_status != "active":
                    dropped += 1
                    orphans += int(row is None)
                    continue
                hits.append(
                    SearchHit(
                        chunk_id=vh.id,
                        document_id=row.document_id,
                        score=round(vh.score, 6),
                        text=row.text,
                        ordinal=row.ordinal,
                        source_uri=row.source_uri,
                        title=row.title,
                        metadata=row.metadata,
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

    def _rows(self, ids: list[int]) -> dict[int, _Row]:
        if not ids:
            return {}
        if self.db.is_sqlite:
            rows = self.db.raw_sqlite_rows(_ROWS_SQLITE, (json.dumps(ids),))
            return {
                int(r[0]): _Row(r[0], r[1], r[2], r[3], r[4], r[5], r[6], json.loads(r[7]) if r[7] else {}, r[8])
                for r in rows
            }
        return {int(r.id): _Row(*r) for r in self.db.fetch(_ROWS, {"ids": ids})}


class _Row(NamedTuple):
    id: int
    text: str
    ordinal: int
    chunk_status: str
    document_id: int
    source_uri: str
    title: str
    metadata: dict[str, Any]
    doc_status: str


# The same query as _ROWS for SQLite's DBAPI: one JSON parameter keeps the SQL text constant, so SQLite's
# statement cache reuses the compiled statement.
_ROWS_SQLITE = (
    "SELECT c.id, c.text, c.ordinal, c.status, d.id, d.source_uri, d.title, d.metadata, d.status "
    "FROM document_chunks AS c JOIN documents AS d ON d.id = c.document_id "
    "WHERE c.id IN (SELECT value FROM json_each(?))"
)


_ROWS = (
    select(
        DocumentChunk.id,
        DocumentChunk.text,
        DocumentChunk.ordinal,
        DocumentChunk.status.label("chunk_status"),
        Document.id.label("document_id"),
        Document.source_uri,
        Document.title,
        Document.metadata_.label("metadata"),
        Document.status.label("doc_status"),
    )
    .join(Document, Document.id == DocumentChunk.document_id)
    .where(DocumentChunk.id.in_(bindparam("ids", expanding=True)))
)
