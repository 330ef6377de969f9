"""The lexical index searched in memory: exact BM25 over every match, the same on SQLite and PostgreSQL.

Each process keeps, per collection it searches, an inverted index read from `chunk_lexemes` (lexical/
postings.py) on first use, as the embedded vector index keeps its flat copy. It follows the collection's
write version: when the version moves, the chunks written since are read by id and appended, and a count
over the collection's rows detects deleted (or late-committed) chunks, which are reconciled by id; a re-index
(a new analyzer state) or dead rows past a quarter of the index rebuild it. SQL stays the judge of what may
be shown: the best candidates are checked against `chunk_visible()` (and the metadata filter) in one query by
id, deeper when the check drops some. A filter that drops most candidates lists its allowed chunks once per
write version instead (as dense search does), and ranking then runs among them.

Memory is bounded by `max_bytes` (RAGSTORE_LEXICAL_MEMORY_MB) over all collections: a collection whose
index would not fit is searched by the SQL backend (`fallback`, today's FTS5 / tsvector path), and the least
recently searched indexes make room for a new one.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import BigInteger, ColumnElement, any_, bindparam, select, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.sql.util import ClauseAdapter

from ragstore.db.compiled import sqlite_text
from ragstore.db.engine import Database
from ragstore.db.filter_memory import FilterMemory
from ragstore.db.models import Collection, Document, DocumentChunk
from ragstore.db.visibility import VISIBLE_SQL, chunk_visible, visible_chunk_ids, visible_sql
from ragstore.lexical.base import LexicalHit, LexicalIndex, QueryTerm, VisibleCheck, idf
from ragstore.lexical.postings import K1, Postings, TermPostings, estimate_bytes

__all__ = ["MemoryLexicalIndex"]

log = logging.getLogger(__name__)
TOO_BIG = "lexical search of collection %d uses the SQL index (slower): about %.0f MiB, RAGSTORE_LEXICAL_MEMORY_MB %.0f"

READ_BATCH = 20_000  # rows read (and analysed into a segment) at a time: bounds the build's peak memory
REBUILD_DEAD_SHARE = 0.25
PROBE_ROUNDS = 3
# A filter not measured yet is probed as if it passed PROBE_SHARE; one measured to pass at most KEEP_SHARE,
# or whose probe would check more than PROBE_MAX candidates, has its allowed chunks listed and kept per
# write version (as dense search does), so the searches until the next write check nothing in SQL.
PROBE_SHARE = KEEP_SHARE = 0.3
PROBE_MAX = 1_000
KEEP_ALLOWED_IDS = 2_000_000  # ids of filters' allowed lists kept over all collections (8 bytes each)

_SIGNATURE = text(
    "SELECT count(*), coalesce(sum(term_count), 0), coalesce(sum(chunk_id), 0), coalesce(max(chunk_id), 0) "
    "FROM chunk_lexemes WHERE collection_id = :c"
)
_STATE = text("SELECT analyzer, analyzer_version, updated_at FROM lexical_indexes WHERE collection_id = :c")
_ROWS_AFTER = text(
    "SELECT chunk_id, terms, term_count FROM chunk_lexemes WHERE collection_id = :c AND chunk_id > :after "
    "ORDER BY chunk_id LIMIT :n"
)
_IDS = text("SELECT chunk_id FROM chunk_lexemes WHERE collection_id = :c")
_ROWS_OF_SQLITE = (
    "SELECT chunk_id, terms, term_count FROM chunk_lexemes WHERE chunk_id IN (SELECT value FROM json_each(?))"
)
_ROWS_OF = text("SELECT chunk_id, terms, term_count FROM chunk_lexemes WHERE chunk_id = ANY(:ids)")
_VISIBLE_SQLITE = (
    "SELECT c.id FROM document_chunks AS c JOIN documents AS d ON d.id = c.document_id "
    f"WHERE c.id IN (SELECT value FROM json_each(?)) AND c.collection_id = ? AND {VISIBLE_SQL}"
)
# The same over the tables by name, for a filter's condition (compiled against `documents`) to follow.
_PASSING_SQLITE = (
    "SELECT document_chunks.id FROM document_chunks JOIN documents ON documents.id = document_chunks.document_id "
    "WHERE document_chunks.id IN (SELECT value FROM json_each(?)) AND document_chunks.collection_id = ? AND "
    + visible_sql("document_chunks", "documents")
)
_VISIBLE_PG = (  # through psycopg itself (Database.raw_postgres_rows): SQLAlchemy's ~0.1 ms a statement
    "SELECT c.id FROM document_chunks AS c JOIN documents AS d ON d.id = c.document_id "
    f"WHERE c.id = ANY(%s::bigint[]) AND c.collection_id = %s AND {VISIBLE_SQL}"
)


@dataclass(frozen=True)
class _Signature:
    """What the collection's rows add up to: a moved version with an unchanged signature changed no terms."""

    count: int
    length: int
    id_sum: int
    max_id: int
    state: tuple[Any, ...] | None  # the analyzer row: a re-index rewrites every term


@dataclass(frozen=True)
class _Held:
    version: int
    signature: _Signature
    postings: Postings | None  # None: too large for the budget, searched by the fallback
    build_s: float = 0.0


class MemoryLexicalIndex(LexicalIndex):
    """`LexicalIndex` answered from memory, with the dialect's SQL index as the fallback past the budget."""

    name = "memory-bm25"

    def __init__(self, db: Database, fallback: LexicalIndex, *, max_bytes: int) -> None:
        self.db = db
        self.fallback = fallback
        self.max_bytes = max_bytes
        self._held: OrderedDict[int, _Held] = OrderedDict()
        self._guard = threading.Lock()
        self._locks: dict[int, threading.Lock] = {}
        self._filters = FilterMemory(KEEP_ALLOWED_IDS)
        self._statements: dict[int, tuple[ColumnElement[bool], Any]] = {}
        self.builds = 0  # full builds done (tests and the benchmark read it)
        self.last_build_s = 0.0

    # -- the LexicalIndex contract -------------------------------------------------------------------------------
    def search(
        self,
        collection_id: int,
        terms: Sequence[QueryTerm],
        limit: int,
        condition: ColumnElement[bool] | None = None,
        *,
        with_coverage: bool = False,
        version: int | None = None,
        passes: ColumnElement[bool] | None = None,
        check: VisibleCheck | None = None,
    ) -> list[LexicalHit]:
        if not terms or limit <= 0:
            return []
        if version is None:
            version = self.version(collection_id)
        postings = self.postings(collection_id, version)
        if postings is None:
            return self.fallback.search(collection_id, terms, limit, condition, with_coverage=with_coverage)
        scores, found = _score(postings, terms)
        if condition is None:
            rows = self._visible_best(collection_id, postings, scores, limit, check)
        else:
            rows = self._filtered_best(collection_id, postings, scores, limit, condition, version, passes)
        hits = [LexicalHit(int(postings.chunk_ids[r]), round(float(scores[r]), 6)) for r in rows]
        if not with_coverage or not hits:
            return hits
        mass = sum(w * t.weight for t, (_, w) in zip(terms, found, strict=True))
        matched = np.zeros(len(rows))
        picked = np.asarray(rows, dtype=np.int64)
        for term, (posting, weight) in zip(terms, found, strict=True):
            if posting.df:
                at = np.minimum(np.searchsorted(posting.rows, picked), posting.df - 1)
                matched += (posting.rows[at] == picked) * (weight * term.weight)
        return [
            LexicalHit(h.chunk_id, h.score, round(float(m) / mass, 4) if mass > 0 else 0.0)
            for h, m in zip(hits, matched, strict=True)
        ]

    def document_frequencies(self, collection_id: int, terms: Sequence[QueryTerm]) -> tuple[int, dict[QueryTerm, int]]:
        """From the index this process holds (at whatever version it was last searched), else the fallback's."""
        held = self._held.get(collection_id)
        if held is None or held.postings is None:
            return self.fallback.document_frequencies(collection_id, terms)
        postings = held.postings
        return postings.live_count, {t: postings.term(t.text, t.prefix).df for t in terms}

    def _rank(
        self, collection_id: int, terms: Sequence[QueryTerm], limit: int, condition: ColumnElement[bool] | None
    ) -> tuple[list[LexicalHit], Mapping[int, str] | None]:
        return self.search(collection_id, terms, limit, condition), None

    def _weights(self, collection_id: int, terms: Sequence[QueryTerm]) -> dict[QueryTerm, float]:
        total, found = self.document_frequencies(collection_id, terms)
        return {t: idf(total, df) for t, df in found.items()}

    # -- the index, kept level with the collection ---------------------------------------------------------------
    def postings(self, collection_id: int, version: int) -> Postings | None:
        """The collection's index at `version` (built or brought level first); None past the memory budget."""
        held = self._held.get(collection_id)
        if held is not None and held.version == version:
            self._touch(collection_id)
            return held.postings
        if self.max_bytes <= 0:
            return None
        with self._lock(collection_id):
            held = self._held.get(collection_id)
            if held is None or held.version != version:
                held = self._refreshed(collection_id, version, held)
                with self._guard:
                    self._held[collection_id] = held
                    self._held.move_to_end(collection_id)
                    self._evict(collection_id)
            return held.postings

    def held_bytes(self) -> int:
        return sum(h.postings.nbytes for h in list(self._held.values()) if h.postings is not None)

    def forget(self, collection_id: int | None = None) -> None:
        with self._guard:
            if collection_id is None:
                self._held.clear()
            else:
                self._held.pop(collection_id, None)

    def _refreshed(self, collection_id: int, version: int, held: _Held | None) -> _Held:
        signature = self._signature(collection_id)
        if held is not None and held.postings is not None and held.signature.state == signature.state:
            postings = self._level(collection_id, held.postings, held.signature, signature)
            if postings is not None:
                if postings.nbytes <= self.max_bytes:
                    return _Held(version, signature, postings, held.build_s)
                log.info("lexical index of collection %d grew past RAGSTORE_LEXICAL_MEMORY_MB", collection_id)
                return _Held(version, signature, None)
        if (need := estimate_bytes(signature.length, signature.count, 0)) > self.max_bytes:  # the SQL index serves it
            level = logging.WARNING if held is None else logging.DEBUG  # once a process, not at every write
            log.log(level, TOO_BIG, collection_id, need / 2**20, self.max_bytes / 2**20)
            return _Held(version, signature, None)
        started = time.perf_counter()
        postings = self._build(collection_id)
        elapsed = time.perf_counter() - started
        self.builds += 1
        self.last_build_s = elapsed
        log.info(
            "lexical index of collection %d built in memory: %d chunks, %d terms, %d postings, %.1f MB, %.2f s",
            collection_id,
            postings.live_count,
            len(postings.vocabulary),
            postings.postings,
            postings.nbytes / 1e6,
            elapsed,
        )
        if postings.nbytes > self.max_bytes:
            return _Held(version, signature, None)
        return _Held(version, signature, postings, elapsed)

    def _level(self, collection_id: int, postings: Postings, before: _Signature, now: _Signature) -> Postings | None:
        """The index brought level with the rows (None: rebuild it)."""
        if now == before:
            return postings
        added = self._rows_after(collection_id, postings.watermark)
        for ids, texts, lengths in added:
            postings = postings.with_rows(ids, texts, lengths)
        if (postings.live_count, postings.live_length) != (now.count, now.length) or _id_sum(postings) != now.id_sum:
            postings = self._reconciled(collection_id, postings)
        if postings.dead > max(1000, REBUILD_DEAD_SHARE * postings.live_count):
            return None
        return postings

    def _reconciled(self, collection_id: int, postings: Postings) -> Postings:
        """Rows deleted (flagged dead) and rows committed late below the watermark (added), found by id."""
        present = np.unique(np.fromiter((int(r[0]) for r in self.db.fetch(_IDS, {"c": collection_id})), np.int64))
        held = postings.chunk_ids[postings.live]
        gone = np.setdiff1d(held, present, assume_unique=True)
        late = np.setdiff1d(present, postings.chunk_ids, assume_unique=False)
        if len(gone):
            postings = postings.without_rows(postings.rows_of(gone))
        for start in range(0, len(late), READ_BATCH):
            part = [int(i) for i in late[start : start + READ_BATCH]]
            if self.db.is_sqlite:
                rows = self.db.raw_sqlite_rows(_ROWS_OF_SQLITE, (json.dumps(part),))
            else:
                rows = [tuple(r) for r in self.db.fetch(_ROWS_OF, {"ids": part})]
            ids, texts, lengths = _columns(sorted(rows))
            postings = postings.with_rows(ids, texts, lengths)
        return postings

    def _build(self, collection_id: int) -> Postings:
        postings: Postings | None = None
        for ids, texts, lengths in self._rows_after(collection_id, -1):
            postings = (
                Postings.build(ids, texts, lengths) if postings is None else postings.with_rows(ids, texts, lengths)
            )
        if postings is None:
            return Postings.build(np.empty(0, np.int64), [], np.empty(0, np.int64))
        return postings.compacted()

    def _rows_after(
        self, collection_id: int, after: int
    ) -> Iterator[tuple[NDArray[np.int64], list[str], NDArray[np.int64]]]:
        """The rows past chunk id `after`, a batch at a time (a caller analyses each before the next is read)."""
        while True:
            rows = [tuple(r) for r in self.db.fetch(_ROWS_AFTER, {"c": collection_id, "after": after, "n": READ_BATCH})]
            if not rows:
                return
            yield _columns(rows)
            after = int(rows[-1][0])
            if len(rows) < READ_BATCH:
                return

    def _signature(self, collection_id: int) -> _Signature:
        count, length, id_sum, max_id = self.db.fetch(_SIGNATURE, {"c": collection_id})[0]
        state = self.db.fetch(_STATE, {"c": collection_id})
        return _Signature(int(count), int(length), int(id_sum), int(max_id), tuple(state[0]) if state else None)

    def version(self, collection_id: int) -> int:
        """The collection's write version, read now (a caller that knows it passes it to `search`)."""
        found = self.db.fetch(select(Collection.write_version).where(Collection.id == collection_id))
        return int(found[0][0]) if found else 0

    def _lock(self, collection_id: int) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(collection_id, threading.Lock())

    def _touch(self, collection_id: int) -> None:
        with self._guard:
            if collection_id in self._held:
                self._held.move_to_end(collection_id)

    def _evict(self, keep: int) -> None:
        """Under the guard: drop the least recently searched indexes until all fit the budget."""
        total = sum(h.postings.nbytes for h in self._held.values() if h.postings is not None)
        for collection_id in list(self._held):
            if total <= self.max_bytes:
                return
            held = self._held[collection_id]
            if collection_id != keep and held.postings is not None:
                total -= held.postings.nbytes
                del self._held[collection_id]

    # -- ranking with SQL as the judge of visibility ---------------------------------------------------------------
    def _visible_best(
        self,
        collection_id: int,
        postings: Postings,
        scores: NDArray[np.float64],
        limit: int,
        check: VisibleCheck | None = None,
    ) -> list[int]:
        """The best `limit` rows whose chunk SQL holds visible: the candidates checked by id (by `check` when
        given), in rounds each four times deeper than the last (a hidden chunk is rare: the first round nearly
        always suffices)."""
        fetch = limit + limit // 2 + 8
        for _ in range(PROBE_ROUNDS):
            rows, _, _ = self._probe(collection_id, postings, scores, limit, None, fetch, check)
            if rows is not None:
                return rows
            fetch *= 4
        return self._among(collection_id, postings, scores, limit, None)

    def _probe(
        self,
        collection_id: int,
        postings: Postings,
        scores: NDArray[np.float64],
        limit: int,
        condition: ColumnElement[bool] | None,
        fetch: int,
        check: VisibleCheck | None = None,
    ) -> tuple[list[int] | None, int, int]:
        """The best `fetch` candidates checked in one query: the best `limit` that pass (None: too few passed
        and more candidates exist), how many were checked and how many passed."""
        ranked = _best(scores, postings.chunk_ids, fetch)
        if not len(ranked):
            return [], 0, 0
        ids = [int(i) for i in postings.chunk_ids[ranked]]
        checked = check if condition is None else None  # the postings hold this collection's chunks only
        passing = checked(ids) if checked is not None else self._passing(collection_id, ids, condition)
        kept = [int(r) for r in ranked if int(postings.chunk_ids[r]) in passing]
        if len(kept) >= limit or len(ranked) < fetch:
            return kept[:limit], len(ranked), len(kept)
        return None, len(ranked), len(kept)

    def _filtered_best(
        self,
        collection_id: int,
        postings: Postings,
        scores: NDArray[np.float64],
        limit: int,
        condition: ColumnElement[bool],
        version: int,
        passes: ColumnElement[bool] | None = None,
    ) -> list[int]:
        """The best rows that pass a filter. Its allowed chunks listed at this version: ranked among them.
        A filter not measured yet, or that passes a large share: the best candidates checked against it (one
        query, which measures the share); else its allowed chunks are listed (one query, as many ids as it
        passes) and kept until the next write."""
        key = (collection_id, id(condition))
        kept = self._filters.kept(key, condition, version)
        if kept is not None:
            return [int(r) for r in _best(scores, postings.chunk_ids, limit, among=postings.rows_of(kept))]
        share = self._filters.share(key, condition)
        fetch = int(2 * (limit + 8) / max(share if share is not None else PROBE_SHARE, 1e-6))
        if (share is None or share > KEEP_SHARE) and fetch <= PROBE_MAX:
            check = passes if passes is not None else condition
            rows, checked, passed = self._probe(collection_id, postings, scores, limit, check, fetch)
            if checked >= 64:
                self._filters.remember(key, condition, max(passed, 0.5) / checked)
            if rows is not None:
                return rows
        return self._among(collection_id, postings, scores, limit, condition, version=version)

    def _among(
        self,
        collection_id: int,
        postings: Postings,
        scores: NDArray[np.float64],
        limit: int,
        condition: ColumnElement[bool] | None,
        *,
        version: int | None = None,
    ) -> list[int]:
        """The best rows among the collection's visible chunks that pass `condition`, listed in SQL."""
        statement = visible_chunk_ids(collection_id, condition)
        allowed = np.unique(np.fromiter((int(r[0]) for r in self.db.fetch(statement)), dtype=np.int64))
        if condition is not None:
            key = (collection_id, id(condition))
            self._filters.remember(key, condition, len(allowed) / max(postings.live_count, 1))
            if version is not None:
                self._filters.keep(key, condition, version, allowed)
        return [int(r) for r in _best(scores, postings.chunk_ids, limit, among=postings.rows_of(allowed))]

    def _passing(self, collection_id: int, chunk_ids: list[int], condition: ColumnElement[bool] | None) -> set[int]:
        """Which of these chunks SQL holds visible (and passing `condition`): one query by id. On SQLite the
        raw driver with one JSON parameter, on PostgreSQL one array parameter: constant statement texts, so
        both reuse their plans."""
        if self.db.is_sqlite:
            if condition is None:
                rows = self.db.raw_sqlite_rows(_VISIBLE_SQLITE, (json.dumps(chunk_ids), collection_id))
            else:
                where, params = sqlite_text(condition)
                rows = self.db.raw_sqlite_rows(
                    f"{_PASSING_SQLITE} AND ({where})", (json.dumps(chunk_ids), collection_id, *params)
                )
        elif condition is None:
            rows = self.db.raw_postgres_rows(_VISIBLE_PG, (chunk_ids, collection_id))
        else:
            rows = self.db.fetch(self._statement(condition), {"ids": chunk_ids, "c": collection_id})
        return {int(r[0]) for r in rows}

    def _statement(self, condition: ColumnElement[bool]) -> Any:
        """PostgreSQL's check of candidates against a filter, kept per condition object.

        The candidates and their documents are read by primary key inside a subquery that the planner cannot
        flatten (OFFSET 0), and the filter tests those rows only: joined directly, PostgreSQL misjudged a
        metadata filter as selective and walked every document it passes (2,000 of them, 16 ms at 100,000
        chunks, against about 1 ms for a few hundred candidates)."""
        found = self._statements.get(id(condition))
        if found is not None and found[0] is condition:
            return found[1]
        candidates = (
            select(DocumentChunk.id.label("chunk_id"), *Document.__table__.columns)
            .join(Document, Document.id == DocumentChunk.document_id)
            .where(
                DocumentChunk.id == any_(bindparam("ids", type_=ARRAY(BigInteger))),
                DocumentChunk.collection_id == bindparam("c"),
                chunk_visible(),
            )
            .offset(0)
            .subquery("documents")
        )
        statement = select(candidates.c.chunk_id).where(ClauseAdapter(candidates).traverse(condition))
        with self._guard:
            self._statements[id(condition)] = (condition, statement)
            while len(self._statements) > 512:
                self._statements.pop(next(iter(self._statements)))
        return statement


def _score(
    postings: Postings, terms: Sequence[QueryTerm]
) -> tuple[NDArray[np.float64], list[tuple[TermPostings, float]]]:
    """BM25 of every row for the query (0 where no term matches), and each term's postings and IDF."""
    scores = np.zeros(postings.rows)
    norms = postings.norms()
    found = []
    for term in terms:
        posting = postings.term(term.text, term.prefix)
        idf = postings.idf(posting.df)
        found.append((posting, idf))
        if posting.df:
            tf = posting.tfs
            scores[posting.rows] += idf * tf * (K1 + 1) / (tf + norms[posting.rows])
    return scores, found


def _best(
    scores: NDArray[np.float64], chunk_ids: NDArray[np.int64], count: int, among: NDArray[np.int64] | None = None
) -> NDArray[np.int64]:
    """The `count` best matching rows (of `among`, if given), by score, ties by chunk id."""
    candidates = np.flatnonzero(scores > 0) if among is None else among[scores[among] > 0]
    if len(candidates) > count:
        part = np.argpartition(-scores[candidates], count - 1)[:count]
        floor = scores[candidates[part]].min()
        candidates = candidates[scores[candidates] >= floor]  # every tie at the edge, then ordered by id
    order = np.lexsort((chunk_ids[candidates], -scores[candidates]))
    return candidates[order][:count]


def _id_sum(postings: Postings) -> int:
    return int(postings.chunk_ids[postings.live].sum())


def _columns(rows: Sequence[tuple[Any, ...]]) -> tuple[NDArray[np.int64], list[str], NDArray[np.int64]]:
    ids = np.fromiter((int(r[0]) for r in rows), dtype=np.int64, count=len(rows))
    lengths = np.fromiter((int(r[2]) for r in rows), dtype=np.int64, count=len(rows))
    return ids, [r[1] for r in rows], lengths
