"""The `bridge` fusion of hybrid search: two embeddings and the expanded lexical evidence, standardised and added.

Reciprocal rank fusion cannot answer a Korean question about an English passage: the default model ranks by
language first, and every lexical match is a same-language neighbour's. Measured side by side on the
evaluation set (docs/benchmarks.md, issue #19), this scoring did best across every kind of question:

- the candidates are the dense side's and the lexical side's best (the lexical query expanded across
  scripts, search/term_bridge.py);
- each candidate is scored by the collection model's cosine, the companion model's cosine (USE, trained for
  cross-lingual question answering; embeddings/companion.py) and the lexical score;
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
from sqlalchemy import bindparam, select

from ragstore.db.engine import Database
from ragstore.db.models import DocumentChunk, Embedding
from ragstore.embeddings.companion import Companion

__all__ = ["BridgeScore", "BridgeScorer", "LexicalEvidence"]


@dataclass(frozen=True)
class LexicalEvidence:
    score: float
    coverage: float


@dataclass(frozen=True)
class BridgeScore:
    fused: float
    dense: float | None  # the collection model's cosine
    companion: float | None  # the companion model's cosine


# Two primary-key lookups: the candidates' content hashes, then their vectors (an outer join of the two
# made SQLite scan the embeddings table).
_HASHES = select(DocumentChunk.id, DocumentChunk.content_hash, DocumentChunk.text).where(
    DocumentChunk.id.in_(bindparam("ids", expanding=True))
)
_VECTORS = select(Embedding.model, Embedding.content_hash, Embedding.vector).where(
    Embedding.model.in_(bindparam("models", expanding=True)),
    Embedding.content_hash.in_(bindparam("hashes", expanding=True)),
)


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
    ) -> dict[int, BridgeScore]:
        """Every candidate's fused score (higher is better) and the cosines it was made of."""
        if not candidates:
            return {}
        own, other = self._vectors(candidates, model, companion_vector is not None)
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

    def _vectors(
        self, candidates: Sequence[int], model: str, with_companion: bool
    ) -> tuple[dict[int, NDArray[np.float32]], dict[int, NDArray[np.float32]]]:
        """The candidates' stored vectors under the collection's model and the companion's; a companion
        vector not yet computed (a chunk from before the companion) is computed and stored now."""
        models = [model]
        if with_companion and self.companion is not None:
            models.append(self.companion.model)
        own: dict[int, NDArray[np.float32]] = {}
        other: dict[int, NDArray[np.float32]] = {}
        texts = {int(i): (digest, text) for i, digest, text in self.db.fetch(_HASHES, {"ids": list(candidates)})}
        found: dict[tuple[str, str], NDArray[np.float32]] = {
            (m, h): np.frombuffer(blob, dtype="<f4")
            for m, h, blob in self.db.fetch(
                _VECTORS, {"models": models, "hashes": sorted({d for d, _ in texts.values()})}
            )
        }
        for chunk_id, (digest, _) in texts.items():
            if (model, digest) in found:
                own[chunk_id] = found[(model, digest)]
            if len(models) > 1 and (models[1], digest) in found:
                other[chunk_id] = found[(models[1], digest)]
        if with_companion and self.companion is not None:
            missing = {texts[i][0]: texts[i][1] for i in candidates if i not in other and i in texts}
            if missing:
                computed = self.companion.ensure(missing)
                for i in candidates:
                    if i not in other and i in texts and texts[i][0] in computed:
                        other[i] = computed[texts[i][0]]
        return own, other


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
    q_norm = float(np.linalg.norm(q)) or 1.0
    out: dict[int, float] = {}
    for chunk_id in candidates:
        v = vectors.get(chunk_id)
        if v is not None and v.shape == q.shape:
            norm = float(np.linalg.norm(v)) or 1.0
            out[chunk_id] = float(v @ q) / (norm * q_norm)
        elif chunk_id in fallback:
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
