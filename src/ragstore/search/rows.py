"""The rows a search shows: a chunk with its document, read by chunk id in one query."""

from __future__ import annotations

import json
from typing import Any, NamedTuple

import orjson
from sqlalchemy import ColumnElement

from ragstore.db.compiled import postgres_form, postgres_text, sqlite_text
from ragstore.db.engine import Database
from ragstore.db.visibility import is_visible
from ragstore.schemas import SearchHit

__all__ = ["ChunkRow", "read_rows", "shown_score", "sqlite_chunk_row", "sqlite_text"]


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


def sqlite_chunk_row(r: Any) -> ChunkRow:
    """A ChunkRow from the first nine columns of a SQLite row in `_ROWS_SQLITE`'s order (metadata as JSON text)."""
    return ChunkRow(r[0], r[1], r[2], r[3], r[4], r[5], r[6], orjson.loads(r[7]) if r[7] else {}, r[8])


def read_rows(db: Database, ids: list[int], where: ColumnElement[bool] | None = None) -> dict[int, ChunkRow]:
    """The rows of these chunk ids; with `where` (a filter's condition over `documents`), only those of the
    documents that pass it, in the same query (a filtered search checks its candidates this way)."""
    if not ids:
        return {}
    if db.is_sqlite:
        if where is None:
            rows = db.raw_sqlite_rows(_ROWS_SQLITE, (json.dumps(ids),))
        else:
            condition, params = sqlite_text(where)
            rows = db.raw_sqlite_rows(f"{_ROWS_SQLITE_NAMED} AND ({condition})", (json.dumps(ids), *params))
        return {int(r[0]): sqlite_chunk_row(r) for r in rows}
    # psycopg itself: SQLAlchemy's execution costs ~0.1 ms a statement, more than the query (see
    # Database.raw_postgres_rows).
    if where is None:
        rows = db.raw_postgres_rows(_ROWS_PG, (ids,))
    else:
        condition, params = postgres_text(where)
        rows = db.raw_postgres_rows(f"{_ROWS_PG_NAMED} AND ({condition})", (ids, *params))
    return {int(r[0]): ChunkRow(*r) for r in rows}


# A chunk and its document by chunk id, on the raw drivers. One JSON parameter (one array parameter on
# PostgreSQL, `postgres_form`) keeps the SQL text the same for any number of ids, so each database compiles
# the statement once and reuses its plan.
_ROWS_SQLITE = (
    "SELECT c.id, c.text, c.ordinal, c.status, d.id, d.source_uri, d.title, d.metadata, d.status "
    "FROM document_chunks AS c JOIN documents AS d ON d.id = c.document_id "
    "WHERE c.id IN (SELECT value FROM json_each(?))"
)

# The same with the tables unaliased, for a filter's condition (compiled against `documents`) to follow.
_ROWS_SQLITE_NAMED = (
    "SELECT document_chunks.id, document_chunks.text, document_chunks.ordinal, document_chunks.status, "
    "documents.id, documents.source_uri, documents.title, documents.metadata, documents.status "
    "FROM document_chunks JOIN documents ON documents.id = document_chunks.document_id "
    "WHERE document_chunks.id IN (SELECT value FROM json_each(?))"
)

_ROWS_PG = postgres_form(_ROWS_SQLITE)
_ROWS_PG_NAMED = postgres_form(_ROWS_SQLITE_NAMED)
