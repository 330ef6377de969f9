"""Query expansion across scripts: each query term brings the other language's nearest vocabulary terms.

Lexical search cannot match a Korean question to an English passage: they share no word. Each query term
gets the `top` terms of the other script from the collection's own vocabulary (its analysed terms, so every
added term can match a chunk) whose companion-model vectors are nearest to its own, at cosine >= `threshold`.
"오대산 야영장 카라반은 하룻밤에 얼마" gains "campground", "caravan", "overnight"; an English question gains
Korean terms. The numbers (3 terms, 0.5) were set once by reasoning, not searched on the evaluation set
(docs/benchmarks.md, issue #19). An added term carries its cosine as its weight in the coverage that
scales the lexical evidence (search/bridge_fusion.py).

An added term found in more than one chunk in twenty (`MAX_ADDED_SHARE`) and in more than `COSTLY_POSTINGS`
chunks is left out: its BM25 weight is small (an IDF under 3), so it barely moves a chunk's score, but the
full-text query walks its whole posting list. At 100,000 chunks the generated corpus of bench/search_speed.py
expanded Korean queries with English words found in a third of the chunks, which doubled the lexical side's
time (docs/benchmarks.md). A small collection keeps every expansion: its lists cost nothing.

Each process keeps one vocabulary per collection: two usearch HNSW indexes (Hangul terms, the others) over
the terms' companion vectors, which ingest stores in the `embeddings` table. It is built on a collection's
first bridged search and brought up to date incrementally (the chunks added since, by chunk id) when the
collection's write version moves; a re-index with another analyzer rebuilds it, as does a new process.
Terms of deleted chunks stay until then (an added term that matches nothing costs nothing), and so may a
gap: on PostgreSQL a writer that commits a lower chunk id after a higher one was read leaves its new terms
out until the rebuild. Both cost only expansions, never a wrong result.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import select

from ragstore.db.engine import Database
from ragstore.db.models import ChunkLexeme
from ragstore.documents.companion import Companion, is_vocabulary_term
from ragstore.lexical.base import MAX_QUERY_TERMS, QueryTerm
from ragstore.lexical.indexer import AnalyzerState
from ragstore.text.hashing import content_hash

if TYPE_CHECKING:
    from usearch.index import Index

__all__ = ["BridgedQuery", "TermBridge"]

_HANGUL = re.compile(r"[\uac00-\ud7a3]")
READ_BATCH = 5000
# usearch's parallel `add` can strand a node where no search reaches it (USearch #735, see
# vectors/embedded.py), and its graph then differs from run to run: one thread builds the same graph from
# the same terms, so a restored copy expands a query exactly as its original did.
INSERT_THREADS = 1
# Up to this many terms on a side, a term's neighbours are found exactly (brute force over f16 vectors,
# well under a millisecond a term): a small collection's expansions do not depend on the graph's build order.
EXACT_SEARCH_LIMIT = 5_000
# An added term in more than this share of the collection's chunks, and in more than this many, costs the
# lexical query more than it tells.
MAX_ADDED_SHARE = 0.05
COSTLY_POSTINGS = 1000

# How many chunks a collection has and how many hold each term (LexicalIndex.document_frequencies).
FrequencyReader = Callable[[int, Sequence[QueryTerm]], tuple[int, dict[QueryTerm, int]]]


def _is_korean(term: str) -> bool:
    return bool(_HANGUL.search(term))


@dataclass(frozen=True)
class BridgedQuery:
    vector: NDArray[np.float32] | None  # the query text under the companion model
    terms: list[QueryTerm]  # the query's own terms, then the added ones


@dataclass
class _Vocabulary:
    state: AnalyzerState | None
    dimension: int
    watermark: int = 0  # the highest chunk id whose terms are in
    terms: list[str] = field(default_factory=list)
    known: set[str] = field(default_factory=set)
    indexes: dict[bool, Index] = field(default_factory=dict)  # is Korean -> index over that script's terms
    stale: bool = True

    def index(self, korean: bool) -> Index:
        found = self.indexes.get(korean)
        if found is None:
            from usearch.index import Index  # on first use: the CLI's light commands must not load it

            found = Index(ndim=self.dimension, metric="cos", dtype="f16", connectivity=16, expansion_add=64)
            self.indexes[korean] = found
        return found


class TermBridge:
    def __init__(
        self,
        db: Database,
        companion: Companion,
        *,
        frequencies: FrequencyReader | None = None,
        top: int = 3,
        threshold: float = 0.5,
    ) -> None:
        self.db = db
        self.companion = companion
        self.frequencies = frequencies  # None: no added term is left out for being common
        self.top = top
        self.threshold = threshold
        self._vocabularies: dict[int, _Vocabulary] = {}
        self._locks: dict[int, threading.Lock] = {}
        self._guard = threading.Lock()

    def forget(self, collection_id: int) -> None:
        """The collection changed: the next expansion first reads the chunks added since (cheap)."""
        found = self._vocabularies.get(collection_id)
        if found is not None:
            found.stale = True

    def prepare(self, collection_id: int, state: AnalyzerState | None) -> int:
        """Build (or bring up to date) the collection's vocabulary now, not in its first bridged search: at
        20,000 chunks the build takes 15-20 s (docs/benchmarks.md). Returns how many terms it holds."""
        with self._lock(collection_id):
            return len(self._current(collection_id, state).terms)

    def expand(self, collection_id: int, state: AnalyzerState | None, terms: list[QueryTerm]) -> list[QueryTerm]:
        """The query's terms, then the added ones (each once, weighted by its cosine to the term it bridges)."""
        return self.bridged(collection_id, state, None, terms).terms

    def bridged(
        self, collection_id: int, state: AnalyzerState | None, text: str | None, terms: list[QueryTerm]
    ) -> BridgedQuery:
        """The query text's companion vector (when `text` is given) and its expanded terms: one encoder call
        for the text and its words together."""
        return self.bridged_many(collection_id, state, [(text, terms)])[0]

    def bridged_many(
        self, collection_id: int, state: AnalyzerState | None, queries: Sequence[tuple[str | None, list[QueryTerm]]]
    ) -> list[BridgedQuery]:
        """`bridged` for each of several queries (a search batch): one read of the stored word vectors and one
        encoder call for all their texts and words (USE encodes 100 short texts in one call for about half
        the time per text of one call each: 4.4 against 8.2 ms here)."""
        words_of = [[t for t in terms if is_vocabulary_term(t.text)] for _, terms in queries]
        hashes = {t.text: content_hash(t.text) for words in words_of for t in words}
        # A word of the collection's vocabulary has its vector stored already (USE is symmetric and encodes
        # each text alone: the stored one is what encoding it now would give); the encoder gets the rest.
        stored = self.companion.stored(hashes.values()) if hashes else {}
        unknown = [word for word, h in hashes.items() if h not in stored]
        inputs = list(dict.fromkeys([*(text for text, _ in queries if text is not None), *unknown]))
        encoded = dict(zip(inputs, self.companion.embed_terms(inputs), strict=True)) if inputs else {}
        out = []
        for (text, terms), words in zip(queries, words_of, strict=True):
            if text is None and not words:
                out.append(BridgedQuery(None, list(terms)))
                continue
            vectors = [stored[h] if (h := hashes[t.text]) in stored else encoded[t.text] for t in words]
            added = self._added(collection_id, state, terms, words, vectors) if words else []
            out.append(BridgedQuery(encoded[text] if text is not None else None, [*terms, *added]))
        return out

    def _added(
        self,
        collection_id: int,
        state: AnalyzerState | None,
        terms: list[QueryTerm],
        words: list[QueryTerm],
        vectors: list[NDArray[np.float32]],
    ) -> list[QueryTerm]:
        """The other script's terms nearest each word's vector, best first, the common and costly left out."""
        present = {t.text for t in terms}
        added: dict[str, float] = {}
        with self._lock(collection_id):
            vocabulary = self._current(collection_id, state)
            for term, term_vector in zip(words, vectors, strict=True):
                index = vocabulary.indexes.get(not _is_korean(term.text))
                if index is None or len(index) == 0:
                    continue
                found = index.search(term_vector, self.top, exact=len(index) <= EXACT_SEARCH_LIMIT)
                for key, distance in zip(found.keys, found.distances, strict=True):
                    similarity = 1.0 - float(distance)
                    other = vocabulary.terms[int(key)]
                    if similarity >= self.threshold and other not in present:
                        added[other] = max(added.get(other, 0.0), round(similarity, 4))
        ranked = sorted(added.items(), key=lambda kv: (-kv[1], kv[0]))[:MAX_QUERY_TERMS]
        return self._uncommon(collection_id, [QueryTerm(t, weight=w) for t, w in ranked])

    def _uncommon(self, collection_id: int, added: list[QueryTerm]) -> list[QueryTerm]:
        """The added terms that are not both common and costly (MAX_ADDED_SHARE, COSTLY_POSTINGS)."""
        if not added or self.frequencies is None:
            return added
        total, found = self.frequencies(collection_id, added)
        limit = max(MAX_ADDED_SHARE * total, COSTLY_POSTINGS)
        return [t for t in added if found.get(t, 0) <= limit]

    def _lock(self, collection_id: int) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(collection_id, threading.Lock())

    def _current(self, collection_id: int, state: AnalyzerState | None) -> _Vocabulary:
        vocabulary = self._vocabularies.get(collection_id)
        if vocabulary is None or vocabulary.state != state:
            vocabulary = _Vocabulary(state, self.companion.dimension)
            self._vocabularies[collection_id] = vocabulary
        if vocabulary.stale:
            self._read_new(collection_id, vocabulary)
            vocabulary.stale = False
        return vocabulary

    def _read_new(self, collection_id: int, vocabulary: _Vocabulary) -> None:
        """Add the terms of the chunks stored since the watermark, a batch of chunks at a time."""
        while True:
            with self.db.read() as s:
                rows = s.execute(
                    select(ChunkLexeme.chunk_id, ChunkLexeme.terms)
                    .where(ChunkLexeme.collection_id == collection_id, ChunkLexeme.chunk_id > vocabulary.watermark)
                    .order_by(ChunkLexeme.chunk_id)
                    .limit(READ_BATCH)
                ).all()
            if not rows:
                return
            fresh = sorted({t for _, text in rows for t in text.split() if is_vocabulary_term(t)} - vocabulary.known)
            if fresh:
                vectors = self.companion.terms(fresh)
                for korean in (True, False):
                    side = [t for t in fresh if _is_korean(t) == korean]
                    if not side:
                        continue
                    keys = np.arange(len(vocabulary.terms), len(vocabulary.terms) + len(side), dtype=np.uint64)
                    vocabulary.index(korean).add(keys, np.stack([vectors[t] for t in side]), threads=INSERT_THREADS)
                    vocabulary.terms.extend(side)
                vocabulary.known.update(fresh)
            vocabulary.watermark = int(rows[-1][0])
