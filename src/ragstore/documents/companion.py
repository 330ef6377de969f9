"""The companion embedding: a second, cross-lingual vector of every chunk and of every vocabulary term.

The default model (multilingual e5) places a text by its language before its meaning, so a Korean question
rarely finds an English passage; `use-multilingual-v3` was trained for cross-lingual question answering and
fails on other questions than e5 does (docs/benchmarks.md, issue #19). Hybrid search with the `bridge`
fusion scores its candidates with both. The companion's vectors live in the `embeddings` table beside the
collection model's, keyed by (model, content hash) like every embedding: a chunk's under its text's hash, a
vocabulary term's under the term's. They are not indexed (the candidates come from the collection's own
vector index and the lexical index), so no vector backend changes, and a store that never computed them
(a collection from before, or ingest with the companion off) gets them on first use.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import cast

import numpy as np
from cachetools import LRUCache
from numpy.typing import NDArray
from sqlalchemy import Table, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from ragstore.db.batches import in_batches
from ragstore.db.bulk import insert_many
from ragstore.db.engine import Database
from ragstore.db.models import Embedding, utcnow
from ragstore.embeddings.base import Embedder
from ragstore.embeddings.batching import QueryBatcher
from ragstore.lexical.base import clean_terms
from ragstore.text.hashing import content_hash

__all__ = ["Companion", "EmbeddingRows", "insert_embeddings", "is_vocabulary_term"]

EMBEDDINGS = cast(Table, Embedding.__table__)
# A hash already stored keeps its vector: the same text under the same model.
_INSERT_EMBEDDINGS_SQLITE = sqlite_insert(EMBEDDINGS).on_conflict_do_nothing()
_INSERT_EMBEDDINGS_PG = pg_insert(EMBEDDINGS).on_conflict_do_nothing()
Vectors = NDArray[np.float32]
# Stored vectors a process keeps: a query's words recur (the sample load's 60 questions share most of theirs),
# and each search read them again, a round trip on PostgreSQL. 8,192 of USE's 512-d vectors are 16 MiB.
STORED_CACHE = 8192


def is_vocabulary_term(term: str) -> bool:
    """Whether a term may stand in for a query word of the other language: a number or a lone letter
    ("3", "a") means the same in both and is matched already; anything longer than a word is not a term."""
    return 2 <= len(term) <= 40 and not term.isdigit()


@dataclass(frozen=True)
class EmbeddingRows:
    """Vectors to store under one model, by content hash (little-endian float32 bytes)."""

    model: str
    dimension: int
    vectors: dict[str, bytes]


def insert_embeddings(s: Session, is_sqlite: bool, rows: EmbeddingRows) -> None:
    """Insert within the caller's transaction; a hash already stored keeps its vector (same text, same model)."""
    if not rows.vectors:
        return
    now = utcnow()
    values = [
        {"model": rows.model, "content_hash": h, "dimension": rows.dimension, "vector": v, "created_at": now}
        for h, v in rows.vectors.items()
    ]
    insert_many(s, _INSERT_EMBEDDINGS_SQLITE if is_sqlite else _INSERT_EMBEDDINGS_PG, values, batch=2000)


# PostgreSQL: psycopg itself, its results in binary (a bytea in text format comes as hex, twice its bytes and a
# decoding pass), as the search path's other reads of vectors (Database.raw_postgres_rows).
_STORED_PG = (
    "SELECT content_hash, vector FROM embeddings WHERE model = %s AND dimension = %s AND content_hash = ANY(%s)"
)
# SQLite: the thread's own raw connection and one JSON parameter, as the search path's other reads
# (search/rows.py); through the pool, 50 concurrent searches opened and closed a connection each time.
_STORED_SQLITE = (
    "SELECT content_hash, vector FROM embeddings WHERE model = ? AND dimension = ? "
    "AND content_hash IN (SELECT value FROM json_each(?))"
)


class Companion:
    """Reads, computes and stores the companion model's vectors."""

    def __init__(self, db: Database, embedder: Embedder) -> None:
        self.db = db
        self.embedder = embedder
        self.model = embedder.model
        self.dimension = embedder.dimension
        # Concurrent hybrid searches' texts share one encoder call: one call at a time per process, and
        # one each had made the companion the bound of text searches once e5's int8 engine was 3x faster.
        self.queries = QueryBatcher(embedder)
        # A (model, content hash) names the vector of one text under one model: inserts keep a stored row, and
        # a re-embed (documents/ingest.py) writes that model's vector of that text again, so a copy read once
        # stays right without invalidation.
        self._recent: LRUCache[str, Vectors] = LRUCache(maxsize=STORED_CACHE)
        self._recent_lock = threading.Lock()

    def close(self) -> None:
        self.queries.close()

    def stored(self, hashes: Iterable[str]) -> dict[str, Vectors]:
        """The vectors the table holds for these hashes (a hash it lacks is left out)."""
        out: dict[str, Vectors] = {}
        wanted = list(dict.fromkeys(hashes))
        with self._recent_lock:
            for h in wanted:
                if (known := self._recent.get(h)) is not None:
                    out[h] = known
        # Core rows without a session: a search reads its query words' vectors here, and an ORM session's
        # set-up cost more than the query (about 1 ms of a hybrid search).
        for part in in_batches([h for h in wanted if h not in out]):
            if self.db.is_sqlite:
                rows = self.db.raw_sqlite_rows(_STORED_SQLITE, (self.model, self.dimension, json.dumps(part)))
            else:
                rows = self.db.raw_postgres_rows(_STORED_PG, (self.model, self.dimension, part))
            read = {h: np.frombuffer(blob, dtype="<f4") for h, blob in rows}
            out.update(read)
            with self._recent_lock:
                self._recent.update(read)
        return out

    def rows_for(self, texts: Mapping[str, str]) -> EmbeddingRows:
        """Vectors for the texts (by hash) the table lacks: what an ingest stores beside its chunks."""
        known = self._known(texts)
        return self._embedded({h: t for h, t in texts.items() if h not in known})

    def rows_for_ingest(self, chunks: Mapping[str, str], terms: list[list[str]]) -> EmbeddingRows:
        """The vectors of an ingest batch's chunks (by hash) and of its new vocabulary terms, computed before
        the transaction (the query-side expansion looks terms up by their vector, search/term_bridge.py)."""
        texts = dict(chunks)
        vocabulary = {t for chunk_terms in terms for t in clean_terms(chunk_terms) if is_vocabulary_term(t)}
        texts.update((content_hash(t), t) for t in vocabulary)
        return self.rows_for(texts)

    def ensure(self, texts: Mapping[str, str]) -> dict[str, Vectors]:
        """Every text's vector (by hash): stored ones read, the others embedded and stored now."""
        found = self.stored(texts)
        missing = {h: t for h, t in texts.items() if h not in found}
        if missing:
            rows = self._embedded(missing)
            self.db.write(lambda s: insert_embeddings(s, self.db.is_sqlite, rows))
            for h, blob in rows.vectors.items():
                found[h] = np.frombuffer(blob, dtype="<f4")
        return found

    def terms(self, terms: Iterable[str]) -> dict[str, Vectors]:
        """Each vocabulary term's vector (stored under the term's content hash), embedding what is missing."""
        by_hash = {content_hash(t): t for t in terms}
        found = self.ensure(by_hash)
        return {t: found[h] for h, t in by_hash.items()}

    def embed_terms(self, terms: list[str]) -> Vectors:
        """A query's vectors (its text, its words), not stored: they are not the collection's vocabulary."""
        if 0 < len(terms) <= self.queries.max_batch:  # one search's: queued with the other searches'
            return np.stack(self.queries.embed_queued(terms))
        return np.asarray(self.embedder.embed(terms, kind="query"), dtype=np.float32)  # a search batch's

    def _known(self, texts: Mapping[str, str]) -> set[str]:
        known: set[str] = set()
        with self.db.read() as s:
            for part in in_batches(list(texts)):
                known.update(
                    s.scalars(
                        select(Embedding.content_hash).where(
                            Embedding.model == self.model, Embedding.content_hash.in_(part)
                        )
                    )
                )
        return known

    def _embedded(self, texts: Mapping[str, str]) -> EmbeddingRows:
        if not texts:
            return EmbeddingRows(self.model, self.dimension, {})
        matrix = self.embedder.embed(list(texts.values()), kind="document")
        return EmbeddingRows(
            self.model,
            self.dimension,
            {h: np.ascontiguousarray(v, dtype="<f4").tobytes() for h, v in zip(texts, matrix, strict=True)},
        )
