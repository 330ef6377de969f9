"""Exact scores for an 8-bit index's candidates, from the float32 vectors SQL holds.

With `RAGSTORE_INDEX_DTYPE=i8` the graph and the flat copy keep a quarter of f32's bytes, and their cosine
is a few thousandths off: near neighbours swap places and recall@10 falls (0.80 at 100,000 vectors in
bench/ann_libraries.py). The candidates' own vectors are in the `embeddings` table, so a search asks the
index for more candidates than it shows, scores them exactly, and keeps the best: recall as f32's for a
read of a few dozen rows by primary key.
"""

from __future__ import annotations

import json
from typing import TypeVar

import numpy as np
from numpy.typing import NDArray

from ragstore.db.compiled import postgres_form
from ragstore.db.engine import Database

__all__ = ["exact_order"]

T = TypeVar("T")

# A correlated lookup per chunk, not a join: with an id list SQLite's planner turns a join around and walks
# every embedding of the model (0.3 s a search at 5,000 chunks; db/chunk_vectors.py met the same). Through the
# raw drivers, with one parameter for the ids (a constant statement text, its plan reused): SQLAlchemy's
# execution cost more than the read, and on PostgreSQL its text format sent each vector as hex.
_VECTORS_SQL = (
    "SELECT c.id, (SELECT e.vector FROM embeddings AS e WHERE e.model = ? AND e.content_hash = c.content_hash) "
    "FROM document_chunks AS c WHERE c.id IN (SELECT value FROM json_each(?))"
)
_VECTORS_PG = postgres_form(_VECTORS_SQL)


def exact_order(
    db: Database, model: str, query: NDArray[np.float32], found: list[tuple[T, float]], ids: list[int]
) -> list[tuple[T, float]]:
    """`found` (items with approximate scores; `ids` their chunk ids) re-scored by exact cosine with the
    float32 vectors SQL holds, best first. An item whose vector SQL lacks keeps its score."""
    if not found:
        return found
    width = 4 * len(query)
    if db.is_sqlite:
        rows = db.raw_sqlite_rows(_VECTORS_SQL, (model, json.dumps(ids)))
    else:
        rows = db.raw_postgres_rows(_VECTORS_PG, (model, ids))
    vectors = {int(i): bytes(v) for i, v in rows if v is not None and len(v) == width}
    unit = query / (float(np.linalg.norm(query)) or 1.0)
    rescored: list[tuple[T, float]] = []
    for (item, score), chunk_id in zip(found, ids, strict=True):
        raw = vectors.get(chunk_id)
        if raw is not None:
            v = np.frombuffer(raw, dtype="<f4")
            score = float(v @ unit) / (float(np.linalg.norm(v)) or 1.0)
        rescored.append((item, score))
    rescored.sort(key=lambda pair: -pair[1])
    return rescored
