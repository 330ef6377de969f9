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

from ragstore.db.batches import IN_BATCH
from ragstore.db.engine import Database
from ragstore.db.models import ChunkStatus, Embedding

__all__ = ["BATCH", "VectorBatch", "iter_indexed_vectors", "vectors_for_chunks"]

BATCH = IN_BATCH  # ids per query: each is a bound parameter (db/batches.py)


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


_JOINED = (
    "SELECT c.id, e.vector FROM document_chunks c "
    "LEFT JOIN embeddings e ON e.model = {model} AND e.content_hash = c.content_hash "
    "WHERE c.collection_id = {cid} AND c.status = '{indexed}' AND c.id > {after} ORDER BY c.id LIMIT {limit}"
)
_SQLITE_JOINED = _JOINED.format(model="?", cid="?", indexed=ChunkStatus.INDEXED, after="?", limit="?")
_PG_JOINED = _JOINED.format(model="%s", cid="%s", indexed=ChunkStatus.INDEXED, after="%s", limit="%s")


def iter_indexed_vectors(
    db: Database, collection_id: int, model: str, dimension: int, *, batch_size: int = BATCH, after: int = 0
) -> Iterator[VectorBatch]:
    """The chunks SQL holds as indexed, with their vectors, in chunk-id order, batch by batch.

    One range query per batch that joins `embeddings` (the plan walks the chunks by id and looks each
    content hash up by primary key), through the raw driver on both databases: at a million chunks this read is
    most of a consistency check, and the ORM's IN lists and row objects had tripled it (bench/consistency.py).
    A missing embedding, or one of another dimension, leaves the chunk out of `ids` but in `chunk_ids`.
    """
    width = 4 * dimension
    while True:
        if db.is_sqlite:
            rows = db.raw_sqlite_rows(_SQLITE_JOINED, (model, collection_id, after, batch_size))
        else:
            # psycopg itself, in binary format: through SQLAlchemy each vector came as hex text to decode,
            # twice its bytes (a consistency check at 1M chunks on PostgreSQL: see docs/benchmarks.md).
            rows = db.raw_postgres_rows(_PG_JOINED, (model, collection_id, after, batch_size))
        if not rows:
            return
        usable = [(int(r[0]), r[1]) for r in rows if r[1] is not None and len(r[1]) == width]
        ids = np.fromiter((i for i, _ in usable), dtype=np.int64, count=len(usable))
        vectors = np.frombuffer(b"".join(v for _, v in usable), dtype="<f4").reshape(len(usable), dimension)
        after = int(rows[-1][0])
        yield VectorBatch(ids, vectors, [int(r[0]) for r in rows], after)
