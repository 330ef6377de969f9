"""The `bridge` fusion of hybrid search: two embeddings and the expanded lexical evidence, standardised and added.

Reciprocal rank fusion cannot answer a Korean question about an English passage: the default model ranks by
language first, and every lexical match is a same-language neighbour's. Measured side by side on the
evaluation set (docs/benchmarks.md, issue #19), this scoring did best across every kind of question:

- the candidates are the dense side's and the lexical side's best (the lexical query expanded across
  scripts, search/term_bridge.py);
- each candidate is scored by the collection model's cosine, the companion model's cosine (USE, trained for
  cross-lingual question answering; documents/companion.py) and the lexical score;
- each of the three is standardised over the candidates (z-scores: a cosine and a BM25 score have no
  common scale, and a z-score keeps how far apart the candidates are, which ranks alone lose);
- the lexical z-score is scaled by the square root of the candidate's coverage (the share of the expanded
  query's IDF mass it holds): a paraphrase shares few words with its answer, and those few must not outvote
  both embeddings;
- `dense_weight` weighs the two embeddings' sum, `lexical_weight` the lexical part.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from ragstore.db.engine import Database
from ragstore.documents.companion import Companion
from ragstore.search.candidate_rows import CandidateRows, read_candidates

__all__ = ["BridgeScore", "BridgeScorer", "KnownVectors", "LexicalEvidence"]


@dataclass(frozen=True)
class LexicalEvidence:
    score: float
    coverage: float


@dataclass(frozen=True)
class KnownVectors:
    """Candidates' rows and vectors read ahead: under the collection's `model`, and the companion's if asked."""

    model: str
    with_companion: bool
    found: CandidateRows

    @property
    def own(self) -> Mapping[int, NDArray[np.float32]]:
        return self.found.own

    @property
    def other(self) -> Mapping[int, NDArray[np.float32]]:
        return self.found.other


@dataclass(frozen=True)
class BridgeScore:
    fused: float
    dense: float | None  # the collection model's cosine
    companion: float | None  # the companion model's cosine


def standardised(values: NDArray[np.float64]) -> NDArray[np.float64]:
    spread = float(values.std())
    if len(values) < 2 or spread < 1e-9:
        return np.zeros_like(values)
    out: NDArray[np.float64] = (values - values.mean()) / spread
    return out


class BridgeScorer:
    def __init__(self, db: Database, companion: Companion | None) -> None:
        self.db = db
        self.companion = companion

    def score(
        self,
        candidates: Sequence[int],
        *,
        model: str,
        vector: NDArray[np.float32],
        companion_vector: NDArray[np.float32] | None,
        dense: Mapping[int, float],
        lexical: Mapping[int, LexicalEvidence],
        dense_weight: float,
        lexical_weight: float,
        known: KnownVectors | None = None,
    ) -> dict[int, BridgeScore]:
        """Every candidate's fused score (higher is better) and the cosines it was made of. `known`: some
        candidates' vectors read already (`vectors`, on the side thread that found the dense half)."""
        if not candidates:
            return {}
        with_companion = companion_vector is not None
        known = self.vectors(candidates, model, with_companion, known)
        own, other = known.own, known.other
        dense_cos = _cosines(candidates, own, vector, fallback=dense)
        parts = dense_weight * standardised(np.array([dense_cos[i] for i in candidates]))
        companion_cos: dict[int, float] = {}
        if companion_vector is not None:
            companion_cos = _cosines(candidates, other, companion_vector, fallback={})
            parts = parts + dense_weight * standardised(np.array([companion_cos[i] for i in candidates]))
        parts = parts + lexical_weight * _lexical_part(candidates, lexical)
        return {
            chunk_id: BridgeScore(
                float(fused),
                round(dense_cos[chunk_id], 6),
                round(companion_cos[chunk_id], 6) if chunk_id in companion_cos else None,
            )
            for chunk_id, fused in zip(candidates, parts, strict=True)
        }

    def vectors(
        self, candidates: Sequence[int], model: str, with_companion: bool, known: KnownVectors | None = None
    ) -> KnownVectors:
        """These candidates' rows and vectors: what `known` holds (read ahead, as for the dense side on its
        thread) kept, the rest read in one statement; `score` given the result reads nothing more."""
        found = CandidateRows()
        if known is not None and known.model == model and known.with_companion == with_companion:
            found.update(known.found)
        rest = [i for i in candidates if i not in found.rows]
        if rest:
            found.update(self.read(rest, model, with_companion))
        return KnownVectors(model, with_companion, found)

    def read(self, candidates: Sequence[int], model: str, with_companion: bool) -> CandidateRows:
        """The candidates' rows and stored vectors under the collection's model and the companion's (one
        statement, search/candidate_rows.py); a visible chunk's companion vector not yet computed (a chunk from
        before the companion) is computed and stored now."""
        companion = self.companion if with_companion else None
        found = read_candidates(self.db, list(candidates), model, companion.model if companion is not None else None)
        if companion is not None:
            missing = {
                found.hashes[i]: row.text for i, row in found.rows.items() if i not in found.other and row.visible
            }
            if missing:
                computed = companion.ensure(missing)
                for chunk_id, digest in found.hashes.items():
                    if digest in computed and chunk_id not in found.other:
                        found.other[chunk_id] = computed[digest]
        return found


def _cosines(
    candidates: Sequence[int],
    vectors: Mapping[int, NDArray[np.float32]],
    query: NDArray[np.float32],
    *,
    fallback: Mapping[int, float],
) -> dict[int, float]:
    """Cosine of each candidate's vector to the query; one without a vector of that dimension gets its
    `fallback` score, else the lowest cosine found (it cannot be ranked on this evidence)."""
    q = np.asarray(query, dtype=np.float32)
    have = [i for i in candidates if (v := vectors.get(i)) is not None and v.shape == q.shape]
    out: dict[int, float] = {}
    if have:
        matrix = np.stack([vectors[i] for i in have])
        norms = np.linalg.norm(matrix, axis=1) * (float(np.linalg.norm(q)) or 1.0)
        sims = (matrix @ q) / np.where(norms > 0, norms, 1.0)
        out = dict(zip(have, sims.tolist(), strict=True))
    for chunk_id in candidates:
        if chunk_id not in out and chunk_id in fallback:
            out[chunk_id] = fallback[chunk_id]
    lowest = min(out.values(), default=0.0)
    return {chunk_id: out.get(chunk_id, lowest) for chunk_id in candidates}


def _lexical_part(candidates: Sequence[int], lexical: Mapping[int, LexicalEvidence]) -> NDArray[np.float64]:
    """The lexical z-score (over the candidates it matched) scaled by √coverage; 0 where it matched none
    or fewer than two (one match has no spread to standardise)."""
    matched = [i for i in candidates if i in lexical]
    if len(matched) < 2:
        return np.zeros(len(candidates))
    z = dict(zip(matched, standardised(np.array([lexical[i].score for i in matched])), strict=True))
    return np.array([z[i] * math.sqrt(max(lexical[i].coverage, 0.0)) if i in lexical else 0.0 for i in candidates])
