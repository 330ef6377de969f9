"""The Embedder contract and the usage record every backend reports.

Vectors are float32, L2-normalised, one row per input, in input order. `model` is the identifier stored
with every vector in the `embeddings` table: two embedders with the same `model` must give the same
vectors, because the table is a cache keyed by (model, content hash).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

__all__ = ["EmbedKind", "Embedder", "UsageRecord", "UsageSink", "l2_normalise"]

EmbedKind = Literal["query", "document"]


@dataclass(frozen=True)
class UsageRecord:
    """What one call to an embedding backend cost."""

    backend: str
    model: str
    inputs: int
    tokens: int
    cost_usd: float
    duration_ms: float
    attempts: int = 1


UsageSink = Callable[[UsageRecord], None]


@runtime_checkable
class Embedder(Protocol):
    backend: str
    model: str
    dimension: int

    def embed(self, texts: Sequence[str], *, kind: EmbedKind) -> NDArray[np.float32]:
        """Vectors for `texts`, shape (len(texts), dimension), L2-normalised float32.

        `kind` lets asymmetric models (e5: "query: " / "passage: ") encode each side as trained.
        Raises Unavailable when a remote service cannot answer after its retries, InvalidInput when the
        service refuses the input itself.
        """


def l2_normalise(vectors: NDArray[np.floating]) -> NDArray[np.float32]:
    out = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return np.ascontiguousarray(out / norms, dtype=np.float32)
