"""The `LexicalIndex` base class and the terms it is written and queried with.

Every backend reads the same rows: `chunk_lexemes` holds each chunk's analysed terms, written in the
chunk's own transaction (`write_lexemes`) and deleted with it by a cascading foreign key. What differs is
the full-text structure over those rows (FTS5 on SQLite, a tsvector with a GIN index on PostgreSQL) and
how a backend ranks: both return higher-is-better scores of BM25 family.
"""

from __future__ import annotations

import math
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, cast

from sqlalchemy import ColumnElement, Table, insert
from sqlalchemy.orm import Session

from ragstore.db.bulk import insert_many
from ragstore.db.models import ChunkLexeme

__all__ = [
    "MAX_QUERY_TERMS",
    "LexicalHit",
    "LexicalIndex",
    "QueryTerm",
    "clean_terms",
    "coverage",
    "idf",
    "lexeme_rows",
    "lexical_text",
    "query_terms",
    "write_lexemes",
]

LEXEMES = cast(Table, ChunkLexeme.__table__)
_INSERT_LEXEMES = insert(LEXEMES)
# A query of thousands of terms (a pasted page) costs a doclist scan per term and ranks no better.
MAX_QUERY_TERMS = 64
_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_ONE_SYLLABLE = re.compile(r"^[\uac00-\ud7a3]$")


@dataclass(frozen=True)
class QueryTerm:
    text: str
    prefix: bool = False  # match every indexed term that starts with `text`
    # How much the term counts in `coverage`: 1 for the query's own, less for a term added by expansion.
    weight: float = 1.0


@dataclass(frozen=True)
class LexicalHit:
    chunk_id: int
    score: float  # higher is better
    # With `with_coverage`: the share of the query's IDF mass this chunk matches (0..1), see `coverage`.
    coverage: float | None = None


# Which of these chunk ids a search may show (db/visibility.py's rule), told by a caller that reads their rows.
VisibleCheck = Callable[[list[int]], set[int]]


class LexicalIndex(ABC):
    """A full-text backend: it ranks (`_rank`) and knows its IDF weights; the shared `search` adds the rest."""

    name: ClassVar[str]

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
        """The best `limit` chunks of the collection for any of `terms`, best first.

        Only chunks a search may show (indexed, of an active document) that satisfy the metadata
        `condition` are ranked: the filter runs inside the full-text query, never after it. `version`: the
        collection's write version, when the caller knows it (an index held in memory follows it). `passes`:
        the same filter as a per-row test over `documents` (db/filters.py without a collection), cheaper than
        `condition` for checking a few candidates. `check`: which of some candidate ids are visible, for an
        index that checks its candidates by id without a filter (the caller reads their rows in the same
        statement, to show them without another); an index that checks in its own query ignores it.
        """
        if not terms or limit <= 0:
            return []
        hits, stored = self._rank(collection_id, terms, limit, condition)
        if not with_coverage or not hits:
            return hits
        if stored is None:
            stored = self._stored_terms([h.chunk_id for h in hits])
        weights = self._weights(collection_id, terms)
        mass = sum(weights.get(term, 0.0) * term.weight for term in terms)
        return [
            LexicalHit(h.chunk_id, h.score, round(coverage(terms, weights, stored.get(h.chunk_id, ""), mass), 4))
            for h in hits
        ]

    @abstractmethod
    def document_frequencies(self, collection_id: int, terms: Sequence[QueryTerm]) -> tuple[int, dict[QueryTerm, int]]:
        """How many chunks there are and how many hold each term, as this backend's ranking counts them (the
        term bridge leaves out added terms too common to be worth their posting lists)."""

    @abstractmethod
    def _rank(
        self, collection_id: int, terms: Sequence[QueryTerm], limit: int, condition: ColumnElement[bool] | None
    ) -> tuple[list[LexicalHit], Mapping[int, str] | None]:
        """The hits, best first, and the stored terms of the chunks ranked when the ranking read them anyway
        (None: `_stored_terms` reads them, only if coverage is asked for)."""

    def _stored_terms(self, chunk_ids: Sequence[int]) -> Mapping[int, str]:
        """The stored terms of these chunks (for `coverage`): a backend whose `_rank` does not return them
        reads them here."""
        raise NotImplementedError

    @abstractmethod
    def _weights(self, collection_id: int, terms: Sequence[QueryTerm]) -> dict[QueryTerm, float]:
        """IDF per query term, from the statistics this backend ranks with."""


def idf(total: int, df: int) -> float:
    """BM25's inverse document frequency (always positive)."""
    return math.log(1 + (total - df + 0.5) / (df + 0.5))


def coverage(
    terms: Sequence[QueryTerm], weights: dict[QueryTerm, float], stored: str, mass: float | None = None
) -> float:
    """The share of the query's IDF mass that a chunk's stored terms match.

    BM25 ranks a chunk that matches one common query word above nothing at all; fused with the dense
    ranking, such weak matches outvote it (an English question over Korean passages matches every English
    passage on "make" or "home"). Hybrid search proposes only lexical hits that cover enough of the query
    (RAGSTORE_HYBRID_MIN_COVERAGE); a rare word counts for more than a common one.
    """
    if mass is None:  # the query's whole weighted IDF mass (the caller computes it once for many chunks)
        mass = sum(weights.get(term, 0.0) * term.weight for term in terms)
    if mass <= 0:
        return 0.0
    words = set(stored.split())
    matched = 0.0
    for term in terms:
        if term.text in words if not term.prefix else any(w.startswith(term.text) for w in words):
            matched += weights.get(term, 0.0) * term.weight
    return matched / mass


def clean_terms(terms: Sequence[str]) -> list[str]:
    """Terms as both full-text engines tokenise them: runs of letters and digits, nothing else.

    An analyzer may emit a form with punctuation ("3.5", "c++"); split here, the stored text and the query
    agree on what a term is whichever engine reads them.
    """
    out: list[str] = []
    for term in terms:
        out.extend(_WORD.findall(term))
    return out


def query_terms(terms: Sequence[str], *, prefix_single_syllables: bool = False) -> list[QueryTerm]:
    """A query's distinct terms, in order, at most MAX_QUERY_TERMS.

    With the bigram analyzer a one-syllable Hangul word ("집") is stored only inside bigrams ("집에"), so it
    is looked up as a prefix.
    """
    seen: set[str] = set()
    out: list[QueryTerm] = []
    for term in clean_terms(terms):
        if term in seen:
            continue
        seen.add(term)
        out.append(QueryTerm(term, prefix=prefix_single_syllables and bool(_ONE_SYLLABLE.match(term))))
        if len(out) >= MAX_QUERY_TERMS:
            break
    return out


def lexical_text(title: str, chunk_text: str) -> str:
    """What a chunk's lexical terms are analysed from: the document's title, then the chunk.

    A title names what a document is about ("Kalden DW-6045 error codes", "국립중앙박물관 관람 안내") in
    words its later chunks often leave out; analysing it with every chunk lets a query on those words find
    any part of the document (as search engines weight a title field). Dense vectors embed the chunk alone.
    """
    return f"{title}\n{chunk_text}" if title and not chunk_text.startswith(title) else chunk_text


def lexeme_rows(
    collection_id: int, chunk_ids: Sequence[int], term_lists: Sequence[Sequence[str]]
) -> list[dict[str, Any]]:
    rows = []
    for chunk_id, terms in zip(chunk_ids, term_lists, strict=True):
        cleaned = clean_terms(terms)
        rows.append(
            {
                "chunk_id": int(chunk_id),
                "collection_id": collection_id,
                "terms": " ".join(cleaned),
                "term_count": len(cleaned),
            }
        )
    return rows


def write_lexemes(s: Session, rows: list[dict[str, Any]], batch: int = 5000) -> None:
    """Within the caller's transaction (the one that writes the chunks)."""
    insert_many(s, _INSERT_LEXEMES, rows, batch=batch)
