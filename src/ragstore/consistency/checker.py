"""Finds every kind of drift between SQL (the system of record) and the vector index.

The check reads ids in batches and compares sets with numpy, so it stays linear at a million chunks. It
runs beside live writers: every suspect is confirmed against SQL and the index a second time before it
is reported, so an ingest or delete in flight during the check is never mistaken for drift.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import numpy as np
from sqlalchemy import func, or_, select
from sqlalchemy.orm import aliased

from ragstore.consistency.kinds import KINDS, Kind
from ragstore.db.chunk_vectors import VectorBatch, iter_indexed_vectors
from ragstore.db.compiled import postgres_form
from ragstore.db.engine import Database
from ragstore.db.models import (
    ChunkStatus,
    Collection,
    CollectionStatus,
    Document,
    DocumentChunk,
    DocumentStatus,
    OpState,
    SyncOperation,
    utcnow,
)
from ragstore.vectors.base import VectorIndex

__all__ = ["CheckResult", "ConsistencyChecker", "Finding", "vector_drift"]

# Below this cosine similarity the index holds another vector than SQL (half precision keeps > 0.9999).
SAME_VECTOR = 0.995
SAMPLE_IDS = 20  # ids shown per finding; the count is always exact


@dataclass
class Finding:
    kind: Kind
    collection_id: int | None
    collection: str | None
    count: int
    ids: list[int]
    detail: str
    reason: str  # which variant of the kind, stable too: e.g. dead / overdue for stuck operations
    # For the repairs: every id involved (chunk, document or operation ids, by kind), not only the sample.
    all_ids: list[int] = field(default_factory=list, repr=False)

    def to_dict(self) -> dict[str, Any]:
        info = KINDS[self.kind]
        return {
            "kind": self.kind.value,
            "safe": info.safe,
            "collection": self.collection,
            "collection_id": self.collection_id,
            "count": self.count,
            "ids": self.ids,
            "detail": self.detail,
            "reason": self.reason,
            "remedy": info.remedy,
        }


@dataclass
class CheckResult:
    findings: list[Finding]
    collections: dict[str, dict[str, int]]  # name -> sql_indexed, index_vectors, documents
    duration_ms: float

    def counts(self) -> dict[str, int]:
        out = {kind.value: 0 for kind in Kind}
        for f in self.findings:
            out[f.kind.value] += f.count
        return out

    @property
    def problems(self) -> int:
        return sum(self.counts().values())


def _finding(
    kind: Kind, reason: str, ids: Iterable[int], detail: str, collection_id: int | None, name: str | None
) -> Finding | None:
    every = sorted({int(i) for i in ids})
    if not every:
        return None
    return Finding(kind, collection_id, name, len(every), every[:SAMPLE_IDS], detail, reason, every)


class ConsistencyChecker:
    def __init__(self, db: Database, index: VectorIndex, *, stuck_after_s: float = 900.0, batch: int = 20_000) -> None:
        self.db = db
        self.index = index
        self.stuck_after_s = stuck_after_s
        self.batch = batch

    def check(self, collection: str | None = None) -> CheckResult:
        started = time.perf_counter()
        with self.db.read() as s:
            # Active collections only: a collection being dropped is leaving the index through the outbox,
            # and its chunks would read as missing vectors until the drop finishes.
            query = select(Collection.id, Collection.name, Collection.dimension, Collection.embedding_model).where(
                Collection.status == CollectionStatus.ACTIVE
            )
            if collection is not None:
                query = query.where(Collection.name == collection)
            rows = s.execute(query.order_by(Collection.id)).all()
            known = set(s.scalars(select(Collection.id)))
        findings: list[Finding] = []
        summary: dict[str, dict[str, int]] = {}
        for cid, name, dimension, model in rows:
            found, summary[name] = self._check_collection(int(cid), name, int(dimension), model)
            findings += found
        if collection is None:
            findings += self._orphan_collections(known)
        findings += self._stuck_operations({int(r[0]): r[1] for r in rows}, only=collection is not None)
        return CheckResult(
            [f for f in findings if f is not None], summary, round((time.perf_counter() - started) * 1000, 1)
        )

    # -- per collection ------------------------------------------------------------------------------------
    def _check_collection(
        self, cid: int, name: str, dimension: int, model: str
    ) -> tuple[list[Finding], dict[str, int]]:
        out: list[Finding | None] = []
        held = self.index.dimension(cid)
        if held is not None and held != dimension:
            out.append(
                Finding(
                    Kind.DIMENSION_MISMATCH,
                    cid,
                    name,
                    1,
                    [],
                    f"the index holds dimension {held}, the collection has {dimension}",
                    "index_dimension",
                )
            )
            # Nothing else about its vectors can be compared; rebuild after re-embedding.
            return [f for f in out if f is not None], {"sql_indexed": -1, "index_vectors": self.index.count(cid)}
        # The index first, SQL second: a chunk written between the two reads is in SQL, never a false orphan
        # (and a chunk deleted between them is confirmed below).
        in_index = self._index_ids(cid)
        all_rows, indexed = self._chunk_ids(cid)
        with self.db.read() as s:
            documents = int(s.scalar(select(func.count()).where(Document.collection_id == cid)) or 0)
        orphans = np.setdiff1d(in_index, all_rows, assume_unique=True)
        missing = np.setdiff1d(indexed, in_index, assume_unique=True)
        out.append(
            _finding(
                Kind.ORPHAN_VECTORS,
                "vectors",
                self._confirm_orphans(cid, orphans),
                "vectors in the index whose chunk row is gone",
                cid,
                name,
            )
        )
        out.append(
            _finding(
                Kind.MISSING_VECTORS,
                "vectors",
                self._confirm_missing(cid, missing),
                "chunks indexed in SQL, absent from the index",
                cid,
                name,
            )
        )
        stale, unusable = self._compare_vectors(cid, model, dimension, missing)
        out.append(_finding(Kind.STALE_VECTORS, "vectors", stale, "the index holds another vector than SQL", cid, name))
        out.append(
            _finding(
                Kind.DIMENSION_MISMATCH,
                "embedding",
                unusable,
                f"indexed chunks without an embedding of dimension {dimension} under the model {model!r}",
                cid,
                name,
            )
        )
        out.append(self._count_drift(cid, name))
        out += self._duplicates(cid, name)
        out.append(self._duplicate_sources(cid, name))
        summary = {"sql_indexed": len(indexed), "index_vectors": len(in_index), "documents": documents}
        return [f for f in out if f is not None], summary

    def _index_ids(self, cid: int) -> np.ndarray:
        """Every id the index holds, sorted and without repeats (a sort and a neighbour compare: a million
        ids from usearch are unique already, and np.unique's hashing cost 0.8 s there)."""
        parts = [np.asarray(b, dtype=np.int64) for b in self.index.iter_ids(cid, batch_size=100_000)]
        ids = np.sort(np.concatenate(parts)) if parts else np.empty(0, np.int64)
        return ids[np.concatenate(([True], ids[1:] != ids[:-1]))] if len(ids) else ids

    def _chunk_ids(self, cid: int) -> tuple[np.ndarray, np.ndarray]:
        """(every chunk id, the indexed ones) of a collection, sorted, in one read (through the raw driver: a
        million rows through SQLAlchemy's result processing cost seconds)."""
        if self.db.is_sqlite:
            rows = self.db.raw_sqlite_rows(_CHUNK_IDS, (cid,))
        else:
            rows = self.db.raw_postgres_rows(_CHUNK_IDS_PG, (cid,))
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        flags = np.fromiter((bool(r[1]) for r in rows), dtype=bool, count=len(rows))
        return ids, ids[flags]

    def _confirm_orphans(self, cid: int, suspects: np.ndarray) -> list[int]:
        """Suspects still in the index and still without a chunk row."""
        if not len(suspects):
            return []
        still = set(self.index.get(cid, suspects)[0].tolist())
        return sorted(still - self._with_rows(suspects, indexed_only=False))

    def _confirm_missing(self, cid: int, suspects: np.ndarray) -> list[int]:
        """Suspects still indexed in SQL and still absent from the index."""
        if not len(suspects):
            return []
        present = set(self.index.get(cid, suspects)[0].tolist())
        return sorted(self._with_rows(suspects, indexed_only=True) - present)

    def _with_rows(self, ids: np.ndarray, *, indexed_only: bool) -> set[int]:
        """Which of `ids` have a chunk row now (only indexed ones, with `indexed_only`)."""
        found: set[int] = set()
        with self.db.read() as s:
            for part in _chunks(ids.tolist(), 5000):
                query = select(DocumentChunk.id).where(DocumentChunk.id.in_(part))
                if indexed_only:
                    query = query.where(DocumentChunk.status == ChunkStatus.INDEXED)
                found.update(s.scalars(query))
        return found

    def _compare_vectors(
        self, cid: int, model: str, dimension: int, missing: np.ndarray
    ) -> tuple[list[int], list[int]]:
        """(stale ids, ids without a usable embedding): every indexed chunk's vector against the index's.

        This thread reads SQL's batches while one other compares the batch before against the index: the
        read waits on the database (SQLite and psycopg let go of the GIL meanwhile), the comparison on
        usearch and numpy, so the two overlap on a second core (bench/consistency.py)."""
        stale: list[int] = []
        unusable: list[int] = []
        absent = set(missing.tolist())
        with ThreadPoolExecutor(1, thread_name_prefix="ragstore-check") as pool:
            pending: Future[tuple[list[int], list[int]]] | None = None
            for batch in iter_indexed_vectors(self.db, cid, model, dimension, batch_size=self.batch):
                if pending is not None:
                    found = pending.result()
                    stale += found[0]
                    unusable += found[1]
                pending = pool.submit(self._compare_batch, cid, batch, absent)
            if pending is not None:
                found = pending.result()
                stale += found[0]
                unusable += found[1]
        return stale, unusable

    def _compare_batch(self, cid: int, batch: VectorBatch, absent: set[int]) -> tuple[list[int], list[int]]:
        """(stale ids, ids without a usable embedding) of one batch of SQL's vectors."""
        with_embedding = set(batch.ids.tolist())
        unusable = [i for i in batch.chunk_ids if i not in with_embedding]
        if not len(batch.ids):
            return [], unusable
        got_ids, got = self.index.get(cid, batch.ids)
        if not len(got_ids):
            return [], unusable
        # Both sides in chunk-id order: the SQL batch is sorted by id, the index answer follows its keys.
        order = np.argsort(got_ids, kind="stable")
        got_ids, got = got_ids[order], np.asarray(got, dtype=np.float32)[order]
        rows = np.searchsorted(batch.ids, got_ids)
        want = batch.vectors[rows]
        norms = np.linalg.norm(want, axis=1) * np.linalg.norm(got, axis=1)
        norms[norms == 0] = 1.0
        similarity = np.einsum("ij,ij->i", want, got) / norms
        return [int(i) for i in got_ids[similarity < SAME_VECTOR] if int(i) not in absent], unusable

    def _count_drift(self, cid: int, name: str) -> Finding | None:
        chunk = aliased(DocumentChunk)
        counted = (
            select(func.count(chunk.id)).where(chunk.document_id == Document.id).correlate(Document).scalar_subquery()
        )
        with self.db.read() as s:
            ids = list(
                s.scalars(
                    select(Document.id).where(
                        Document.collection_id == cid,
                        Document.status == DocumentStatus.ACTIVE,
                        Document.chunk_count != counted,
                    )
                )
            )
        return _finding(
            Kind.COUNT_DRIFT,
            "chunk_count",
            ids,
            "documents whose chunk_count disagrees with their chunk rows",
            cid,
            name,
        )

    def _duplicates(self, cid: int, name: str) -> list[Finding | None]:
        with self.db.read() as s:
            # A subquery, not a list of bound hashes: no count of duplicates can pass SQLite's variable limit.
            hashes = (
                select(Document.content_hash)
                .where(Document.collection_id == cid)
                .group_by(Document.content_hash)
                .having(func.count() > 1)
            )
            doubled = list(
                s.scalars(select(Document.id).where(Document.collection_id == cid, Document.content_hash.in_(hashes)))
            )
            parent = aliased(Document)
            dangling = list(
                s.scalars(
                    select(DocumentChunk.id)
                    .outerjoin(parent, parent.id == DocumentChunk.document_id)
                    .where(
                        DocumentChunk.collection_id == cid,
                        or_(parent.id.is_(None), parent.collection_id != DocumentChunk.collection_id),
                    )
                )
            )
        return [
            _finding(
                Kind.DUPLICATE_CONTENT,
                "duplicate_documents",
                doubled,
                "documents sharing one content hash (document ids)",
                cid,
                name,
            ),
            _finding(
                Kind.DUPLICATE_CONTENT,
                "dangling_chunks",
                dangling,
                "chunks whose document row is gone or in another collection (chunk ids)",
                cid,
                name,
            ),
        ]

    def _duplicate_sources(self, cid: int, name: str) -> Finding | None:
        """Active documents that share a source with another active one (every one of them, by id)."""
        with self.db.read() as s:
            doubled = (
                select(Document.source_uri)
                .where(Document.collection_id == cid, Document.status == DocumentStatus.ACTIVE)
                .group_by(Document.source_uri)
                .having(func.count() > 1)
            ).subquery()
            ids = list(
                s.scalars(
                    select(Document.id)
                    .where(
                        Document.collection_id == cid,
                        Document.status == DocumentStatus.ACTIVE,
                        Document.source_uri.in_(select(doubled.c.source_uri)),
                    )
                    .order_by(Document.source_uri, Document.id)
                )
            )
        return _finding(
            Kind.DUPLICATE_SOURCE,
            "active_documents",
            ids,
            "active documents sharing one source_uri (document ids, grouped by source)",
            cid,
            name,
        )

    # -- across collections --------------------------------------------------------------------------------
    def _orphan_collections(self, known: set[int]) -> list[Finding]:
        out = []
        for cid in self.index.collection_ids():
            if cid not in known:
                n = self.index.count(cid)
                out.append(
                    Finding(
                        Kind.ORPHAN_VECTORS,
                        cid,
                        None,
                        max(n, 1),
                        [],
                        f"the index holds collection {cid} ({n} vectors), which SQL does not know",
                        "collection",
                        [],
                    )
                )
        return out

    def _stuck_operations(self, names: dict[int, str], *, only: bool) -> list[Finding]:
        cutoff = utcnow() - timedelta(seconds=self.stuck_after_s)
        with self.db.read() as s:
            query = select(SyncOperation.id, SyncOperation.collection_id, SyncOperation.state).where(
                or_(
                    SyncOperation.state == OpState.DEAD,
                    (SyncOperation.state == OpState.PENDING) & (SyncOperation.created_at < cutoff),
                )
            )
            if only:
                query = query.where(SyncOperation.collection_id.in_(list(names)))
            rows = s.execute(query.order_by(SyncOperation.id)).all()
        out = []
        for state in (OpState.DEAD, OpState.PENDING):
            ids = [int(r[0]) for r in rows if r[2] == state]
            detail = (
                "dead-lettered outbox operations (operation ids)"
                if state == OpState.DEAD
                else f"outbox operations pending for more than {self.stuck_after_s:.0f} s (operation ids)"
            )
            found = _finding(
                Kind.STUCK_OPERATIONS, "dead" if state == OpState.DEAD else "overdue", ids, detail, None, None
            )
            if found is not None:
                out.append(found)
        return out


_CHUNK_IDS = (
    f"SELECT id, status = '{ChunkStatus.INDEXED.value}' FROM document_chunks WHERE collection_id = ? ORDER BY id"
)
_CHUNK_IDS_PG = postgres_form(_CHUNK_IDS)


def _chunks(values: list[int], size: int) -> Iterable[list[int]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def vector_drift(db: Database) -> Callable[[VectorIndex, str, int], tuple[list[int], list[int]]]:
    """The drift `ragstore index migrate` mends in its target after the copy (vectors/migration.py's
    `FindDrift`): chunk ids whose vector is missing or stale, and ids the index holds that SQL does not."""

    def find(index: VectorIndex, name: str, collection_id: int) -> tuple[list[int], list[int]]:
        findings = [f for f in ConsistencyChecker(db, index).check(name).findings if f.collection_id == collection_id]
        missing = [i for f in findings if f.kind in (Kind.MISSING_VECTORS, Kind.STALE_VECTORS) for i in f.all_ids]
        orphans = [i for f in findings if f.kind is Kind.ORPHAN_VECTORS for i in f.all_ids]
        return missing, orphans

    return find
