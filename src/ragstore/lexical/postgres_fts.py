"""PostgreSQL full-text over `chunk_lexemes.tsv` (a stored tsvector, `simple` configuration, GIN index).

PostgreSQL ranks with `ts_rank`, which knows term frequency and document length but not how rare a term
is: a query's common term counts as much as its rare one. With `rerank="bm25"` the best candidates by
`ts_rank` (four times what was asked, at least 200) are re-ranked by BM25 (k1 1.2, b 0.75), with document
frequencies counted through the GIN index per collection and cached for a minute; docs/benchmarks.md has
what that buys and costs.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Sequence
from typing import Any, Literal

from cachetools import TTLCache
from sqlalchemy import ColumnClause, ColumnElement, Float, bindparam, func, literal_column, select

from ragstore.db.engine import Database
from ragstore.db.models import ChunkLexeme, Document, DocumentChunk
from ragstore.db.visibility import chunk_visible
from ragstore.lexical.base import LexicalHit, LexicalIndex, QueryTerm, idf

__all__ = ["PostgresFtsIndex", "tsquery_text"]

TSV: ColumnClause[Any] = literal_column("chunk_lexemes.tsv")
K1 = 1.2
B = 0.75
STATS_TTL_S = 60.0


def tsquery_text(terms: Sequence[QueryTerm]) -> str:
    """`to_tsquery('simple', ...)` input matching any term. Terms are letters and digits only (clean_terms),
    so none needs quoting; a prefix term gets `:*`."""
    return " | ".join(t.text + (":*" if t.prefix else "") for t in terms)


class PostgresFtsIndex(LexicalIndex):
    name = "postgres-tsvector"

    def __init__(self, db: Database, *, rerank: Literal["bm25", "none"] = "bm25") -> None:
        self.db = db
        self.rerank = rerank
        self._lock = threading.Lock()
        self._df: TTLCache[tuple[int, str, bool], int] = TTLCache(maxsize=100_000, ttl=STATS_TTL_S)
        self._sizes: TTLCache[int, tuple[int, float]] = TTLCache(maxsize=10_000, ttl=STATS_TTL_S)

    def _rank(
        self, collection_id: int, terms: Sequence[QueryTerm], limit: int, condition: ColumnElement[bool] | None
    ) -> tuple[list[LexicalHit], dict[int, str]]:
        query = func.to_tsquery("simple", bindparam("q"))
        rank = func.ts_rank(TSV, query, 1, type_=Float)  # 1: divided by 1 + log(length)
        fetch = limit if self.rerank == "none" else max(limit * 4, 200)
        statement = (
            select(ChunkLexeme.chunk_id, rank.label("rank"), ChunkLexeme.terms, ChunkLexeme.term_count)
            .join(DocumentChunk, DocumentChunk.id == ChunkLexeme.chunk_id)
            .join(Document, Document.id == DocumentChunk.document_id)
            .where(
                TSV.op("@@")(query),
                ChunkLexeme.collection_id == collection_id,
                chunk_visible(),
            )
            .order_by(literal_column("rank").desc(), ChunkLexeme.chunk_id)
            .limit(fetch)
        )
        if condition is not None:
            statement = statement.where(condition)
        rows = self.db.fetch(statement, {"q": tsquery_text(terms)})
        if self.rerank == "none":
            hits = [LexicalHit(int(r[0]), round(float(r[1]), 6)) for r in rows]
        else:
            hits = self._bm25(collection_id, terms, rows)[:limit]
        return hits, {int(r[0]): r[2] for r in rows}  # the candidates' terms, read with them

    def _weights(self, collection_id: int, terms: Sequence[QueryTerm]) -> dict[QueryTerm, float]:
        total, _ = self._size(collection_id)
        return {t: idf(total, df) for t, df in self._frequencies(collection_id, terms).items()}

    def document_frequencies(self, collection_id: int, terms: Sequence[QueryTerm]) -> tuple[int, dict[QueryTerm, int]]:
        return self._size(collection_id)[0], self._frequencies(collection_id, terms)

    def _bm25(
        self, collection_id: int, terms: Sequence[QueryTerm], rows: Sequence[tuple[int, float, str, int]]
    ) -> list[LexicalHit]:
        if not rows:
            return []
        _, avg_len = self._size(collection_id)
        weights = self._weights(collection_id, terms)
        exact = {t.text for t in terms if not t.prefix}
        prefixes = [t for t in terms if t.prefix]
        scored = []
        for chunk_id, _rank, text, length in rows:
            words = text.split()
            counts = Counter(w for w in words if w in exact)
            for term in prefixes:
                counts[term.text] = sum(1 for w in words if w.startswith(term.text))
            norm = K1 * (1 - B + B * length / avg_len) if avg_len else K1
            score = 0.0
            for term in terms:
                tf = counts.get(term.text, 0)
                if tf:
                    score += weights[term] * tf * (K1 + 1) / (tf + norm)
            scored.append(LexicalHit(int(chunk_id), round(score, 6)))
        scored.sort(key=lambda h: (-h.score, h.chunk_id))
        return scored

    def _size(self, collection_id: int) -> tuple[int, float]:
        with self._lock:
            known = self._sizes.get(collection_id)
        if known is None:
            row = self.db.fetch(
                select(func.count(), func.avg(ChunkLexeme.term_count)).where(ChunkLexeme.collection_id == collection_id)
            )[0]
            known = (int(row[0]), float(row[1] or 0.0))
            with self._lock:
                self._sizes[collection_id] = known
        return known

    def _frequencies(self, collection_id: int, terms: Sequence[QueryTerm]) -> dict[QueryTerm, int]:
        """Document frequencies in the collection, cached for a minute; the unknown ones in one query that
        counts each term over the union of their matches (one bitmap scan, one round trip)."""
        out: dict[QueryTerm, int] = {}
        missing: list[QueryTerm] = []
        with self._lock:
            for term in terms:
                df = self._df.get((collection_id, term.text, term.prefix))
                if df is None:
                    missing.append(term)
                else:
                    out[term] = df
        if missing:
            params: dict[str, str] = {"any": tsquery_text(missing)}
            counts = []
            for i, term in enumerate(missing):
                params[f"t{i}"] = tsquery_text([term])
                counts.append(
                    func.count().filter(TSV.op("@@")(func.to_tsquery("simple", bindparam(f"t{i}")))).label(f"c{i}")
                )
            row = self.db.fetch(
                select(*counts).where(
                    ChunkLexeme.collection_id == collection_id,
                    TSV.op("@@")(func.to_tsquery("simple", bindparam("any"))),
                ),
                params,
            )[0]
            with self._lock:
                for term, df in zip(missing, row, strict=True):
                    self._df[(collection_id, term.text, term.prefix)] = int(df)
                    out[term] = int(df)
        return out
