"""One search in any mode: dense, lexical, or both fused by reciprocal rank fusion (RRF).

RRF scores a chunk by its ranks alone: `dense_weight / (rrf_k + dense_rank) + lexical_weight / (rrf_k +
lexical_rank)`, a side that did not propose it adding nothing. Ranks, not scores, because a cosine
similarity and a BM25 score have no common scale; `rrf_k` (60 by default, after Cormack et al.) damps the
difference between the first few ranks. Each side proposes `max(offset + k + 1, candidates)` chunks, with
the metadata filter applied inside it (the vector index searches only allowed ids; the full-text query
joins the filter), so a filter never empties a page that the collection could fill.

The other fusion, `bridge` (search/bridge_fusion.py, the default since issue #19), scores the same
candidates by two embeddings and the lexical evidence, standardised and added; it is what finds an English
passage for a Korean question.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ragstore.db.engine import Database
from ragstore.db.filters import compile_filter
from ragstore.lexical.base import LexicalHit, LexicalIndex, QueryTerm, VisibleCheck
from ragstore.schemas import SearchHit
from ragstore.search.bridge_fusion import BridgeScorer, KnownVectors, LexicalEvidence
from ragstore.search.candidate_rows import CandidateRows
from ragstore.search.dense import DenseSearcher, RowReader
from ragstore.search.options import Mode, SearchOptions
from ragstore.search.rows import ChunkRow, read_rows, shown_score

__all__ = ["Ranked", "SearchEngine", "rrf"]


@dataclass
class Ranked:
    hits: list[SearchHit]
    dropped: int
    has_more: bool


@dataclass
class _Entry:
    chunk_id: int
    score: float
    row: ChunkRow | None = None
    dense_rank: int | None = None
    dense_score: float | None = None
    lexical_rank: int | None = None
    lexical_score: float | None = None
    lexical_coverage: float | None = None
    companion_score: float | None = None  # bridge fusion: the companion model's cosine

    def explain(self, fused: bool) -> dict[str, Any]:
        return {
            "dense_rank": self.dense_rank,
            "dense_score": self.dense_score,
            "lexical_rank": self.lexical_rank,
            "lexical_score": self.lexical_score,
            "lexical_coverage": self.lexical_coverage,
            "companion_score": self.companion_score,
            "fused_score": round(self.score, 6) if fused else None,
        }


def rrf(
    dense: list[int], lexical: list[int], *, k: int, dense_weight: float, lexical_weight: float
) -> dict[int, float]:
    """Fused scores of every proposed chunk id (ranks are list positions, from 1)."""
    fused: dict[int, float] = {}
    for weight, ids in ((dense_weight, dense), (lexical_weight, lexical)):
        if weight <= 0:
            continue  # a side weighted 0 is off: it proposes nothing
        for rank, chunk_id in enumerate(ids, start=1):
            fused[chunk_id] = fused.get(chunk_id, 0.0) + weight / (k + rank)
    return fused


class SearchEngine:
    def __init__(
        self,
        db: Database,
        dense: DenseSearcher,
        lexical: LexicalIndex,
        *,
        candidates: int,
        bridge: BridgeScorer | None = None,
    ) -> None:
        self.db = db
        self.dense = dense
        self.lexical = lexical
        self.candidates = candidates
        self.bridge = bridge or BridgeScorer(db, None)

    def run(
        self,
        collection_id: int,
        mode: Mode,
        options: SearchOptions,
        *,
        vector: NDArray[np.float32] | None,
        terms: list[QueryTerm] | None,
        filter_spec: dict[str, Any] | None,
        model: str = "",
        companion_vector: NDArray[np.float32] | None = None,
        version: int | None = None,
        dense_found: tuple[list[tuple[ChunkRow, float]], int] | None = None,
        known: KnownVectors | None = None,
    ) -> Ranked:
        """`model` and `companion_vector` (the query under the companion model) serve the bridge fusion;
        `version` (the collection's write version) lets a filter's allowed chunks be kept between searches.
        `dense_found`: the dense side's answer found already, for this search's filter (`dense_side` on a side
        thread, or `DenseSearcher.search_many` for a batch's unfiltered searches, asked for
        `self.proposals(mode, options)` chunks); `known`: its candidates' rows and vectors for the bridge
        fusion, read with it."""
        depth = options.offset + options.k
        bridged = mode == "hybrid" and options.fusion == "bridge"
        condition = compile_filter(filter_spec, postgres=not self.db.is_sqlite, collection_id=collection_id)
        # The same filter as a per-row test (no facet lookups): what checking a few candidates needs.
        passes = compile_filter(filter_spec, postgres=not self.db.is_sqlite) if condition is not None else None
        want = self.proposals(mode, options)
        entries: dict[int, _Entry] = {}
        dense_ids: list[int] = []
        lexical_ids: list[int] = []
        found_lexical: list[LexicalHit] = []
        dropped = 0
        if mode == "dense" or (mode == "hybrid" and options.dense_weight > 0):
            assert vector is not None
            if dense_found is not None:
                found, dropped = dense_found
            else:
                found, dropped = self.dense_side(
                    collection_id, mode, options, vector, filter_spec, model=model, version=version
                )
            for rank, (row, score) in enumerate(found, start=1):
                entries[row.id] = _Entry(row.id, score, row, dense_rank=rank, dense_score=round(score, 6))
                dense_ids.append(row.id)
        if terms and (mode == "lexical" or (mode == "hybrid" and options.lexical_weight > 0)):
            fusing = mode == "hybrid"
            with_companion = companion_vector is not None
            check, lexical_read = self._lexical_check(bridged, model, with_companion)
            found_lexical = self.lexical.search(
                collection_id, terms, want, condition, with_coverage=fusing, version=version, passes=passes, check=check
            )
            if bridged and lexical_read.rows:  # the bridge fusion reads no vector the check read already
                merged = CandidateRows()
                if known is not None and known.model == model and known.with_companion == with_companion:
                    merged.update(known.found)
                merged.update(lexical_read)
                known = KnownVectors(model, with_companion, merged)
            if fusing and not bridged:
                # Weak matches (a common word or two of the query) would outvote the dense side: left out.
                found_lexical = [h for h in found_lexical if (h.coverage or 0.0) >= options.min_coverage]
            for rank, hit in enumerate(found_lexical, start=1):
                entry = entries.setdefault(hit.chunk_id, _Entry(hit.chunk_id, hit.score))
                entry.row = entry.row or lexical_read.rows.get(hit.chunk_id)
                entry.lexical_rank, entry.lexical_score = rank, hit.score
                entry.lexical_coverage = hit.coverage
                lexical_ids.append(hit.chunk_id)
        if bridged:
            order = self._bridge(entries, options, model, vector, companion_vector, found_lexical, known)
        elif mode == "hybrid":
            fused = rrf(
                dense_ids,
                lexical_ids,
                k=options.rrf_k,
                dense_weight=options.dense_weight,
                lexical_weight=options.lexical_weight,
            )
            for chunk_id, score in fused.items():
                entries[chunk_id].score = score
            order = sorted(fused, key=lambda i: (-fused[i], i))
        else:
            order = dense_ids if mode == "dense" else lexical_ids
        if options.min_score is not None:
            order = [i for i in order if shown_score(entries[i].score) >= options.min_score]
        page = [entries[i] for i in order[options.offset : depth]]
        missing = [e.chunk_id for e in page if e.row is None]
        if missing:
            rows = read_rows(self.db, missing)
            for e in page:
                if e.row is None:
                    e.row = rows.get(e.chunk_id)
        hits = []
        for e in page:
            if e.row is None or not e.row.visible:  # deleted between the full-text query and this read
                dropped += 1
                continue
            hits.append(e.row.hit(e.score, e.explain(mode == "hybrid") if options.explain else None))
        return Ranked(hits=hits, dropped=dropped, has_more=len(order) > depth)

    def dense_side(
        self,
        collection_id: int,
        mode: Mode,
        options: SearchOptions,
        vector: NDArray[np.float32],
        filter_spec: dict[str, Any] | None,
        *,
        model: str,
        version: int | None,
        read: RowReader | None = None,
    ) -> tuple[list[tuple[ChunkRow, float]], int]:
        """The dense side's chunks as `run` asks for them, filtered when `filter_spec` is: a caller may find it
        on a side thread while it prepares the lexical side. `read`: how the hits' rows are read (with their
        vectors, for the bridge fusion)."""
        want = self.proposals(mode, options)
        condition = compile_filter(filter_spec, postgres=not self.db.is_sqlite, collection_id=collection_id)
        if condition is None:
            return self.dense.search(collection_id, vector, want, model=model, read=read)
        passes = compile_filter(filter_spec, postgres=not self.db.is_sqlite)
        assert passes is not None
        return self.dense.search_filtered(
            collection_id, vector, want, passes=passes, indexed=condition, model=model, version=version, read=read
        )

    def _lexical_check(
        self, bridged: bool, model: str, with_companion: bool
    ) -> tuple[VisibleCheck | None, CandidateRows]:
        """How the lexical side checks its candidates' visibility: on PostgreSQL by reading their rows (and for
        the bridge fusion their vectors) in the same statement, so that neither the fusion nor the page reads
        them again (two round trips fewer for a bridged search, one for the others); and what it read. SQLite
        reads in process, where a round trip costs nothing and reading every checked candidate's row costs
        more than the ids (hybrid p50 16.8 -> 20.6 ms at 100,000 chunks): there the index checks by id."""
        read = CandidateRows()
        if self.db.is_sqlite:
            return None, read

        def check(ids: list[int]) -> set[int]:
            found = self.bridge.read(ids, model, with_companion) if bridged else CandidateRows(read_rows(self.db, ids))
            read.update(found)
            return {chunk_id for chunk_id, row in found.rows.items() if row.visible}

        return check, read

    def proposals(self, mode: Mode, options: SearchOptions) -> int:
        """How many chunks each side proposes: one more than the page's depth (to know whether there is a next
        page), and for a fusion at least `candidates`."""
        depth = options.offset + options.k
        return depth + 1 if mode != "hybrid" else max(depth + 1, self.candidates)

    def _bridge(
        self,
        entries: dict[int, _Entry],
        options: SearchOptions,
        model: str,
        vector: NDArray[np.float32] | None,
        companion_vector: NDArray[np.float32] | None,
        lexical: list[LexicalHit],
        known: KnownVectors | None = None,
    ) -> list[int]:
        """Score every candidate with the bridge fusion; the candidate ids, best first."""
        candidates = list(entries)
        if vector is None or options.dense_weight == 0:  # no dense side: the lexical order alone
            return [h.chunk_id for h in lexical]
        # The candidates' vectors, and with them the rows of those the dense side did not read: the page is
        # then shown without another statement (one round trip fewer on PostgreSQL).
        known = self.bridge.vectors(candidates, model, companion_vector is not None, known)
        for chunk_id, entry in entries.items():
            if entry.row is None:
                entry.row = known.found.rows.get(chunk_id)
        scores = self.bridge.score(
            candidates,
            model=model,
            vector=vector,
            companion_vector=companion_vector,
            dense={i: e.dense_score for i, e in entries.items() if e.dense_score is not None},
            lexical={h.chunk_id: LexicalEvidence(h.score, h.coverage or 0.0) for h in lexical},
            dense_weight=options.dense_weight,
            lexical_weight=options.lexical_weight,
            known=known,
        )
        for chunk_id, found in scores.items():
            entry = entries[chunk_id]
            entry.score = found.fused
            entry.companion_score = found.companion
            if entry.dense_score is None:
                entry.dense_score = found.dense
        return sorted(scores, key=lambda i: (-scores[i].fused, i))
