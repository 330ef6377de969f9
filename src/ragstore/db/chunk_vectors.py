"""The vectors SQL holds for chunks: what every rebuild, repair and consistency check reads.

The `embeddings` table is keyed by (model, content hash); a chunk's vector is the embedding of its content
hash under its collection's model. Both the outbox applier (rebuilds, upserts) and the consistency checker
(the stale-vector comparison) read them here, so they agree on what "the vector SQL holds" means.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from ragstore.db.engine import Database
from ragstore.db.models import ChunkStatus, DocumentChunk, Embedding

__all__ = ["BATCH", "VectorBatch", "iter_indexed_vectors", "vectors_for_chunks"]

BATCH = 5000


def vectors_for_chunks(
    s: Session, model: str, dimension: int, chunks: list[tuple[int, str]]
) -> tuple[np.ndarray, np.ndarray]:
    """(ids, vectors) for chunks given as (id, content hash); chunks without a usable embedding are left out.

    Two indexed lookups, not a join: with a long id list SQLite's planner turns the join around and walks
    every embedding of the model, which made each apply cost O(all embeddings). An embedding of another
    dimension than the collection's is left out too (the consistency checker reports it), never reshaped.
    """
    by_hash: dict[str, bytes] = {}
    hashes = list({h for _, h in chunks})
    width = 4 * dimension
    for start in range(0, len(hashes), BATCH):
        rows = s.execute(
            select(Embedding.content_hash, Embedding.vector).where(
                Embedding.model == model, Embedding.content_hash.in_(hashes[start : start + BATCH])
            )
        )
        by_hash.update((h, v) for h, v in rows if len(v) == width)
    present = [(i, by_hash[h]) for i, h in chunks if h in by_hash]
    ids = np.fromiter((i for i, _ in present), dtype=np.int64, count=len(present))
    vectors = np.frombuffer(b"".join(v for _, v in present), dtype="<f4").reshape(len(present), dimension)
    return ids, vectors


@dataclass(frozen=True)
class VectorBatch:
    ids: np.ndarray  # chunk ids with a usable embedding, ascending
    vectors: np.ndarray  # their vectors, row by row
    chunk_ids: list[int]  # every indexed chunk id of the batch (those without an embedding too)
    last: int  # the highest chunk id read: where the next batch starts


def iter_indexed_vectors(
    db: Database, collection_id: int, model: str, dimension: int, *, batch_size: int = BATCH, after: int = 0
) -> Iterator[VectorBatch]:
    """The chunks SQL holds as indexed, with their vectors, in chunk-id order, batch by batch."""
    while True:
        with db.read() as s:
            chunks = s.execute(
                select(DocumentChunk.id, DocumentChunk.content_hash)
                .where(
                    DocumentChunk.collection_id == collection_id,
                    DocumentChunk.status == ChunkStatus.INDEXED,
                    DocumentChunk.id > after,
                )
                .order_by(DocumentChunk.id)
                .limit(batch_size)
            ).all()
            if not chunks:
                return
            pairs = [(int(c[0]), c[1]) for c in chunks]
            ids, vectors = vectors_for_chunks(s, model, dimension, pairs)
        after = pairs[-1][0]
        yield VectorBatch(ids, vectors, [i for i, _ in pairs], after)
