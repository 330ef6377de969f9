"""What an ingest's write transaction checks before it writes: each source's lock (two ingests of one
source take turns) and that the stored embeddings it decided to reuse are still there.

An ingest looks up which chunks' embeddings are already stored before its transaction (embedding is the
slow part and must not hold a write lock); `maintenance cleanup` removes embeddings no chunk holds. One
removed between the look-up and the transaction would leave a new chunk with no stored vector, the source of
every rebuild, so the transaction checks the ones it reuses and, if one has gone, the ingest embeds it again
(`ReusedEmbeddingRemoved`, caught in ingest.py).
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from ragstore.db.batches import in_batches
from ragstore.db.models import Document, DocumentStatus, Embedding

__all__ = ["ReusedEmbeddingRemoved", "active_by_source", "removed_embeddings"]


class ReusedEmbeddingRemoved(Exception):
    """A stored embedding the ingest meant to reuse was removed before its transaction (by a cleanup)."""

    def __init__(self, hashes: set[str]) -> None:
        super().__init__(f"{len(hashes)} stored embeddings were removed meanwhile")
        self.hashes = hashes


def removed_embeddings(s: Session, model: str, reused: Collection[str]) -> set[str]:
    """Of the content hashes an ingest reuses, those whose embedding under `model` is no longer stored."""
    present: set[str] = set()
    for part in in_batches(list(reused)):
        present.update(
            s.scalars(select(Embedding.content_hash).where(Embedding.model == model, Embedding.content_hash.in_(part)))
        )
    return set(reused) - present


def _source_lock_key(collection_id: int, source: str) -> int:
    digest = hashlib.sha256(f"{collection_id}\x00{source}".encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def active_by_source(s: Session, collection_id: int, sources: list[str], is_sqlite: bool) -> dict[str, list[int]]:
    """Within a write transaction: the active documents of each source, after taking each source's lock.

    SQLite's write transaction (BEGIN IMMEDIATE) already excludes every other writer. On PostgreSQL a
    transaction-scoped advisory lock per (collection, source), taken in key order so two batches never
    deadlock, makes concurrent replacements of one source take turns; under READ COMMITTED the read that
    follows sees what the previous holder committed.
    """
    unique = sorted(set(sources))
    if not is_sqlite and unique:
        keys = sorted({_source_lock_key(collection_id, src) for src in unique})
        # One array parameter, however many sources: no variable limit applies.
        s.execute(
            text(
                "SELECT count(pg_advisory_xact_lock(k)) "
                "FROM (SELECT unnest(CAST(:keys AS bigint[])) AS k ORDER BY 1) AS l"
            ),
            {"keys": keys},
        )
    found: dict[str, list[int]] = {}
    for names in in_batches(unique):
        for src, doc_id in s.execute(
            select(Document.source_uri, Document.id).where(
                Document.collection_id == collection_id,
                Document.source_uri.in_(names),
                Document.status == DocumentStatus.ACTIVE,
            )
        ):
            found.setdefault(src, []).append(int(doc_id))
    return found
