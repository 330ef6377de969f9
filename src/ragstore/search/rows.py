"""The rows a search shows: a chunk with its document, read by chunk id in one query."""

from __future__ import annotations

import json
from typing import Any, NamedTuple

from sqlalchemy import bindparam, select

from ragstore.db.engine import Database
from ragstore.db.models import Document, DocumentChunk
from ragstore.db.visibility import is_visible
from ragstore.schemas import SearchHit

__all__ = ["ChunkRow", "read_rows", "shown_score"]


def shown_score(score: float) -> float:
    """A hit's score as results show it (six decimals). `min_score` compares this, not the raw float, so a
    score read off one result and passed back keeps that hit."""
    return round(score, 6)


class ChunkRow(NamedTuple):
    id: int
    text: str
    ordinal: int
    chunk_status: str
    document_id: int
    source_uri: str
    title: str
    metadata: dict[str, Any]
    doc_status: str

    @property
    def visible(self) -> bool:
        """Whether a search may show this row (db/visibility.py's rule, on the statuses read)."""
        return is_visible(self.chunk_status, self.doc_status)

    def hit(self, score: float, explain: dict[str, Any] | None = None) -> SearchHit:
        return SearchHit(
            chunk_id=self.id,
            document_id=self.document_id,
            score=shown_score(score),
            text=self.text,
            ordinal=self.ordinal,
            source_uri=self.source_uri,
            title=self.title,
            metadata=self.metadata,
            explain=explain,
        )


def read_rows(db: Database, ids: list[int]) -> dict[int, ChunkRow]:
    if not ids:
        return {}
    if db.is_sqlite:
        rows = db.raw_sqlite_rows(_ROWS_SQLITE, (json.dumps(ids),))
        return {
            int(r[0]): ChunkRow(r[0], r[1], r[2], r[3], r[4], r[5], r[6], json.loads(r[7]) if r[7] else {}, r[8])
            for r in rows
        }
    return {int(r.id): ChunkRow(*r) for r in db.fetch(_ROWS, {"ids": ids})}


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
