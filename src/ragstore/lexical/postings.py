"""A collection's inverted index in memory, and exact BM25 over it with numpy.

PostgreSQL's `@@` finds the matches of a common term quickly but `ts_rank` then reads each matching row's
tsvector (tens of thousands for a common word at 100,000 chunks: 120 ms before any re-rank), and FTS5 sorts
every match by `bm25()`. Ranking needs only, per term, which chunks hold it and how often, and each chunk's
length: a few bytes a posting. This module keeps exactly that, built from `chunk_lexemes.terms` (the rows
both SQL engines index), and scores a query over every match in a few array operations, so the ranking is
BM25 over all matches (k1 1.2, b 0.75, Lucene's always-positive IDF), not a re-rank of a prefix.

Layout: a vocabulary (term -> id, and a sorted view for prefix terms); per chunk a row (chunk id, length,
live flag); postings in segments, each a CSR over term ids (`offsets`, then `rows` as uint32 and `tfs` as
uint16, 6 bytes a posting). Chunks written after the build arrive as small segments, merged into one when
there are too many; a deleted chunk's row is flagged dead and left out of every statistic at once (N, the
average length and each term's document frequency, counted over the live postings), so scores stay exact
until a rebuild packs the dead rows away. A `Postings` is never changed after it is published: a refresh
makes a new one sharing the arrays it did not touch, so searches in flight need no lock.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
from numpy.typing import NDArray

__all__ = ["BYTES_PER_POSTING", "K1", "B", "Postings", "Segment", "build_segment", "estimate_bytes"]

K1 = 1.2
B = 0.75
BYTES_PER_POSTING = 6  # uint32 row + uint16 term frequency
BYTES_PER_ROW = 8 + 4 + 8 + 1  # chunk id, length, length norm, live flag
BYTES_PER_TERM = 120  # the vocabulary's dict entry, the string and the sorted view (measured, rounded up)
MAX_SEGMENTS = 8
_TF_MAX = np.iinfo(np.uint16).max


def estimate_bytes(postings: int, rows: int, terms: int) -> int:
    """What an index of this size holds in memory (the cap is checked against it before a build)."""
    return postings * BYTES_PER_POSTING + rows * BYTES_PER_ROW + terms * (BYTES_PER_TERM + 8)


@dataclass(frozen=True)
class Segment:
    """Postings of some rows, by term id: term t's are `rows[offsets[t]:offsets[t + 1]]`, rows ascending.
    `offsets` covers the terms known when it was built; a later term has no postings here."""

    offsets: NDArray[np.int64]
    rows: NDArray[np.uint32]
    tfs: NDArray[np.uint16]

    @property
    def nbytes(self) -> int:
        return int(self.offsets.nbytes + self.rows.nbytes + self.tfs.nbytes)

    def postings(self, term: int) -> tuple[NDArray[np.uint32], NDArray[np.uint16]]:
        if term + 1 >= len(self.offsets):
            return _NO_ROWS, _NO_TFS
        start, end = int(self.offsets[term]), int(self.offsets[term + 1])
        return self.rows[start:end], self.tfs[start:end]


_NO_ROWS = np.empty(0, dtype=np.uint32)
_NO_TFS = np.empty(0, dtype=np.uint16)


def build_segment(
    texts: Sequence[str], lengths: NDArray[np.int64], first_row: int, vocabulary: dict[str, int]
) -> tuple[Segment, NDArray[np.int32]]:
    """The postings of these chunks' stored terms (space-separated), their rows numbered from `first_row`,
    and each chunk's count of terms; new terms are added to `vocabulary` (the caller's copy). `lengths`: the
    stored counts (`term_count`), checked against the text."""
    tokens = " ".join(texts).split()
    if len(tokens) != int(lengths.sum()):  # term_count disagrees with the text: count from the text itself
        lengths = np.fromiter((len(t.split()) for t in texts), dtype=np.int64, count=len(texts))
    for term in sorted(set(tokens).difference(vocabulary)):  # the new terms (a loop over distinct ones only)
        vocabulary[term] = len(vocabulary)
    # itemgetter looks every token up in one C loop (the fastest of the ways measured; a tuple needs 2+ keys)
    ids = np.array(operator.itemgetter(*tokens)(vocabulary) if len(tokens) > 1 else [vocabulary[t] for t in tokens])
    ids = ids.astype(np.int64, copy=False)
    count = max(len(texts), 1)
    local = np.repeat(np.arange(len(texts), dtype=np.int64), lengths)
    keys, tfs = np.unique(ids * count + local, return_counts=True)  # sorted by term, then row
    terms = keys // count
    offsets = np.zeros(len(vocabulary) + 1, dtype=np.int64)
    np.cumsum(np.bincount(terms, minlength=len(vocabulary)), out=offsets[1:])
    segment = Segment(
        offsets=offsets,
        rows=(keys % count + first_row).astype(np.uint32),
        tfs=np.minimum(tfs, _TF_MAX).astype(np.uint16),
    )
    return segment, lengths.astype(np.int32)


MERGE_BLOCK = 1 << 22  # postings placed at a time by merge_segments (its temporaries: ~100 MB)


def merge_segments(segments: Sequence[Segment], terms: int) -> Segment:
    """One segment holding all of these (their rows are disjoint and each later one's are higher).

    Each segment is already ordered by term, rows ascending, so a term's merged run is its runs in segment
    order: every posting's place is computed and written there, a block of a segment at a time. A global stable
    sort of the term ids did the same with 8-byte arrays over every posting, and a first version of this with
    a segment's at once: at a million chunks the build peaked at 8.2-8.8 GB for a 2.9 GB process."""
    counts = np.zeros(terms, dtype=np.int64)
    for s in segments:
        counts[: len(s.offsets) - 1] += np.diff(s.offsets)
    offsets = np.zeros(terms + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    total = int(offsets[-1])
    rows = np.empty(total, dtype=np.uint32)
    tfs = np.empty(total, dtype=np.uint16)
    filled = offsets[:-1].copy()  # each term's next free place
    for s in segments:
        known = len(s.offsets) - 1
        used = int(s.offsets[-1])
        # A posting's place: its term's first free place, plus its index within the term's run here. Taken a
        # block at a time, so the temporaries stay at MERGE_BLOCK postings whatever the segment's size.
        shift = filled[:known] - s.offsets[:-1]
        for start in range(0, used, MERGE_BLOCK):
            index = np.arange(start, min(start + MERGE_BLOCK, used), dtype=np.int64)
            places = index + shift[np.searchsorted(s.offsets, index, side="right") - 1]
            rows[places] = s.rows[start : start + len(index)]
            tfs[places] = s.tfs[start : start + len(index)]
        filled[:known] += np.diff(s.offsets)
    return Segment(offsets=offsets, rows=rows, tfs=tfs)


@dataclass(frozen=True)
class TermPostings:
    """One query term's matches among the live rows: rows ascending, with the term's frequency in each."""

    rows: NDArray[np.int64]
    tfs: NDArray[np.float64]

    @property
    def df(self) -> int:
        return len(self.rows)


@dataclass(frozen=True)
class Postings:
    """One collection's index at one moment (never changed once published; `with_*` make new ones)."""

    vocabulary: dict[str, int]
    chunk_ids: NDArray[np.int64]  # row -> chunk id
    lengths: NDArray[np.int32]  # row -> number of terms
    live: NDArray[np.bool_]  # row -> not deleted since it was read
    segments: tuple[Segment, ...]
    live_count: int
    live_length: int
    dead: int = 0
    _sorted: list[tuple[NDArray[np.str_], NDArray[np.int64]]] = field(default_factory=list, compare=False)
    _norms: list[NDArray[np.float64]] = field(default_factory=list, compare=False)
    _order: list[NDArray[np.int64]] = field(default_factory=list, compare=False)

    @classmethod
    def build(cls, chunk_ids: NDArray[np.int64], texts: Sequence[str], lengths: NDArray[np.int64]) -> Postings:
        vocabulary: dict[str, int] = {}
        segment, lengths32 = build_segment(texts, lengths, 0, vocabulary)
        return cls(
            vocabulary=vocabulary,
            chunk_ids=np.asarray(chunk_ids, dtype=np.int64),
            lengths=lengths32,
            live=np.ones(len(chunk_ids), dtype=np.bool_),
            segments=(segment,),
            live_count=len(chunk_ids),
            live_length=int(lengths32.sum()),
        )

    # -- size ------------------------------------------------------------------------------------------------
    @property
    def rows(self) -> int:
        return len(self.chunk_ids)

    @property
    def postings(self) -> int:
        return sum(int(s.offsets[-1]) for s in self.segments)

    @property
    def nbytes(self) -> int:
        return sum(s.nbytes for s in self.segments) + estimate_bytes(0, self.rows, len(self.vocabulary))

    @property
    def watermark(self) -> int:
        """The highest chunk id read (rows arrive in increasing chunk id order, late ones aside)."""
        return int(self.chunk_ids.max()) if len(self.chunk_ids) else 0

    # -- changes ---------------------------------------------------------------------------------------------
    def with_rows(self, chunk_ids: NDArray[np.int64], texts: Sequence[str], lengths: NDArray[np.int64]) -> Postings:
        """These chunks added (read since the last refresh), as a new segment; many small ones are merged."""
        if not len(chunk_ids):
            return self
        vocabulary = dict(self.vocabulary)
        segment, added = build_segment(texts, lengths, self.rows, vocabulary)
        segments = (*self.segments, segment)
        if len(segments) > MAX_SEGMENTS:  # the small ones (all but the first) become one
            segments = (segments[0], merge_segments(segments[1:], len(vocabulary)))
        return replace(
            self,
            vocabulary=vocabulary,
            chunk_ids=np.concatenate([self.chunk_ids, np.asarray(chunk_ids, dtype=np.int64)]),
            lengths=np.concatenate([self.lengths, added]),
            live=np.concatenate([self.live, np.ones(len(chunk_ids), dtype=np.bool_)]),
            segments=segments,
            live_count=self.live_count + len(chunk_ids),
            live_length=self.live_length + int(added.sum()),
            _sorted=[],
            _norms=[],
            _order=[],
        )

    def compacted(self) -> Postings:
        """The same index in one segment (after a build read in batches)."""
        if len(self.segments) <= 1:
            return self
        return replace(self, segments=(merge_segments(self.segments, len(self.vocabulary)),))

    def without_rows(self, rows: NDArray[np.int64]) -> Postings:
        """These rows' chunks deleted: flagged dead (their postings stay until a rebuild)."""
        rows = rows[self.live[rows]]
        if not len(rows):
            return self
        live = self.live.copy()
        live[rows] = False
        return replace(
            self,
            live=live,
            live_count=self.live_count - len(rows),
            live_length=self.live_length - int(self.lengths[rows].sum()),
            dead=self.dead + len(rows),
            _norms=[],
        )

    # -- reads -----------------------------------------------------------------------------------------------
    def norms(self) -> NDArray[np.float64]:
        """BM25's length normalisation per row, `k1 * (1 - b + b * length / average length)`."""
        if not self._norms:
            average = self.live_length / self.live_count if self.live_count else 0.0
            if average:
                self._norms.append(K1 * (1 - B + B * self.lengths.astype(np.float64) / average))
            else:
                self._norms.append(np.full(self.rows, K1))
        return self._norms[0]

    def rows_of(self, chunk_ids: NDArray[np.int64]) -> NDArray[np.int64]:
        """The live rows of these chunk ids (ids the index does not hold are left out)."""
        if not self.rows:
            return np.empty(0, dtype=np.int64)
        if not self._order:
            self._order.append(np.argsort(self.chunk_ids, kind="stable"))
        order = self._order[0]
        held = self.chunk_ids[order]
        at = np.minimum(np.searchsorted(held, chunk_ids), self.rows - 1)
        rows: NDArray[np.int64] = order[at[held[at] == chunk_ids]]
        return rows[self.live[rows]]

    def term(self, text: str, prefix: bool = False) -> TermPostings:
        """The live rows holding the term (a prefix: any term that starts with it, frequencies summed)."""
        ids = self._prefix_ids(text) if prefix else ([self.vocabulary[text]] if text in self.vocabulary else [])
        parts = [s.postings(t) for t in ids for s in self.segments]
        parts = [p for p in parts if len(p[0])]
        if not parts:
            return TermPostings(np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float64))
        rows = np.concatenate([p[0] for p in parts]).astype(np.int64)
        tfs = np.concatenate([p[1] for p in parts]).astype(np.float64)
        if len(ids) > 1:  # several completions: one posting per row, their frequencies summed
            rows, inverse = np.unique(rows, return_inverse=True)
            tfs = np.bincount(inverse, weights=tfs, minlength=len(rows)).astype(np.float64)
        if self.dead:
            keep = self.live[rows]
            rows, tfs = rows[keep], tfs[keep]
        return TermPostings(rows, tfs)

    def idf(self, df: int) -> float:
        """BM25's inverse document frequency over the live rows (as lexical/base.py's `idf`)."""
        return math.log(1 + (self.live_count - df + 0.5) / (df + 0.5))

    def _prefix_ids(self, prefix: str) -> list[int]:
        if not self._sorted:
            terms = np.array(list(self.vocabulary), dtype=np.str_)
            order = np.argsort(terms, kind="stable")
            self._sorted.append((terms[order], order.astype(np.int64)))
        terms, order = self._sorted[0]
        low = int(np.searchsorted(terms, prefix, side="left"))
        high = int(np.searchsorted(terms, prefix + "\U0010ffff", side="left"))
        return [int(i) for i in order[low:high]]
