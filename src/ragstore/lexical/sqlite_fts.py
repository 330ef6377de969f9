"""SQLite FTS5 over `chunk_lexemes`: BM25 ranking (`bm25()`), joined to the chunks a search may show.

The FTS5 table is external-content (the terms are stored once, in `chunk_lexemes`) and kept by triggers
(migration 0005). FTS5's statistics (document count, average length, term frequencies) span every
collection of the store; the collection is a join condition, so a hit of another collection is never
returned, only its BM25 weights are shared.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnClause, ColumnElement, Integer, column, literal_column, select, table, text

from ragstore.db.engine import Database
from ragstore.db.models import Document, DocumentChunk
from ragstore.db.visibility import VISIBLE_SQL, chunk_visible
from ragstore.lexical.base import LexicalHit, LexicalIndex, QueryTerm, idf

__all__ = ["SqliteFtsIndex", "fts_match"]

FTS = table("chunk_lexemes_fts", column("rowid", Integer))
BM25: ColumnClause[Any] = literal_column("bm25(chunk_lexemes_fts)")

# The common case (no metadata filter): FTS5 ranks on its own (no join per matching row, which doubled the
# time at 100,000 chunks), then one query keeps the candidates of this collection that a search may show.
# Constant statements on the thread's raw connection: SQLite's statement cache reuses the compiled plans.
_RANKED = (
    "SELECT rowid, bm25(chunk_lexemes_fts) AS rank FROM chunk_lexemes_fts "
    "WHERE chunk_lexemes_fts MATCH ? ORDER BY rank LIMIT ?"
)
_VISIBLE = (
    "SELECT c.id FROM document_chunks AS c JOIN documents AS d ON d.id = c.document_id "
    f"WHERE c.id IN (SELECT value FROM json_each(?)) AND c.collection_id = ? AND {VISIBLE_SQL}"
)
MAX_ROUNDS = 3
# The last resort when the collection is a small part of a large store: rank only its visible chunks.
_PLAIN = (
    "SELECT f.rowid, bm25(chunk_lexemes_fts) AS rank FROM chunk_lexemes_fts AS f "
    "JOIN document_chunks AS c ON c.id = f.rowid JOIN documents AS d ON d.id = c.document_id "
    f"WHERE chunk_lexemes_fts MATCH ? AND c.collection_id = ? AND {VISIBLE_SQL} "
    "ORDER BY rank LIMIT ?"
)

_TERMS = "SELECT chunk_id, terms FROM chunk_lexemes WHERE chunk_id IN (SELECT value FROM json_each(?))"
_DF = "SELECT doc FROM chunk_lexemes_vocab WHERE term = ?"
# A prefix's document frequency is at least its most frequent completion's (the sum would double count).
_PREFIX_DF = "SELECT max(doc) FROM chunk_lexemes_vocab WHERE term >= ? AND term < ?"
STATS_TTL_S = 60.0


def fts_match(terms: Sequence[QueryTerm]) -> str:
    """An FTS5 query matching any of the terms: each a quoted string, so no term is read as an operator."""
    parts = []
    for term in terms:
        quoted = '"' + term.text.replace('"', '""') + '"'
        parts.append(quoted + " *" if term.prefix else quoted)
    return " OR ".join(parts)


class SqliteFtsIndex(LexicalIndex):
    name = "sqlite-fts5"

    def __init__(self, db: Database) -> None:
        self.db = db
        self._total: tuple[float, int] | None = None

    def _rank(
        self, collection_id: int, terms: Sequence[QueryTerm], limit: int, condition: ColumnElement[bool] | None
    ) -> tuple[list[LexicalHit], None]:
        match = fts_match(terms)
        if condition is None:
            rows = self._ranked_visible(match, collection_id, limit)
        else:
            statement = (
                select(FTS.c.rowid, BM25)
                .select_from(
                    FTS.join(DocumentChunk, DocumentChunk.id == FTS.c.rowid).join(
                        Document, Document.id == DocumentChunk.document_id
                    )
                )
                .where(
                    text("chunk_lexemes_fts MATCH :match"),
                    DocumentChunk.collection_id == collection_id,
                    chunk_visible(),
                    condition,
                )
                .order_by(BM25)
                .limit(limit)
            )
            rows = [tuple(r) for r in self.db.fetch(statement, {"match": match})]
        # bm25() is lower-is-better (negative); LexicalIndex's scores are higher-is-better.
        return [LexicalHit(int(r[0]), round(-float(r[1]), 6)) for r in rows], None

    def _stored_terms(self, chunk_ids: Sequence[int]) -> dict[int, str]:
        return dict(self.db.raw_sqlite_rows(_TERMS, (json.dumps(list(chunk_ids)),)))

    def _ranked_visible(self, match: str, collection_id: int, limit: int) -> list[tuple[int, float]]:
        """The best `limit` visible chunks of the collection: ranked by FTS5 alone, then checked; when
        other collections' or invisible chunks crowd the top, asked again for four times more."""
        fetch = limit * 2
        for _ in range(MAX_ROUNDS):
            ranked = self.db.raw_sqlite_rows(_RANKED, (match, fetch))
            visible = {
                int(r[0])
                for r in self.db.raw_sqlite_rows(_VISIBLE, (json.dumps([r[0] for r in ranked]), collection_id))
            }
            kept = [(int(r[0]), float(r[1])) for r in ranked if int(r[0]) in visible]
            if len(kept) >= limit or len(ranked) < fetch:
                return kept[:limit]
            fetch *= 4
        return [(int(r[0]), float(r[1])) for r in self.db.raw_sqlite_rows(_PLAIN, (match, collection_id, limit))]

    def _weights(self, collection_id: int, terms: Sequence[QueryTerm]) -> dict[QueryTerm, float]:
        """IDF per query term, from the fts5vocab table (store-wide, like bm25's own statistics, so the
        collection plays no part)."""
        total, found = self.document_frequencies(collection_id, terms)
        return {term: idf(total, min(df, total)) for term, df in found.items()}

    def document_frequencies(self, collection_id: int, terms: Sequence[QueryTerm]) -> tuple[int, dict[QueryTerm, int]]:
        now = time.monotonic()
        if self._total is None or now - self._total[0] > STATS_TTL_S:
            rows = self.db.raw_sqlite_rows("SELECT count(*) FROM chunk_lexemes", ())
            self._total = (now, int(rows[0][0]))
        found: dict[QueryTerm, int] = {}
        for term in terms:
            if term.prefix:
                rows = self.db.raw_sqlite_rows(_PREFIX_DF, (term.text, term.text + "\U0010ffff"))
            else:
                rows = self.db.raw_sqlite_rows(_DF, (term.text,))
            found[term] = int(rows[0][0] or 0) if rows else 0
        return self._total[1], found
