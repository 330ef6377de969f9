"""The default vector index: one usearch HNSW graph per collection, in files beside the SQLite database.

Each collection is `<dir>/<collection_id>.usearch` plus `<collection_id>.json`, the sidecar holding the
outbox sequence the file contains. Files are written to a temporary name and renamed, the sidecar last,
so a crash leaves either the old pair or a new file with an older sequence, and replaying the outbox
from that sequence is always correct (every operation is idempotent).

Several processes on one machine may share the directory, each with its own replica in memory. Saving
takes an exclusive `flock` on the directory and never replaces a pair whose sequence is newer than the
replica's own, so the files on disk always come whole from one replica, at one sequence.

The file layout, and the `KeepsFiles` classmethods through which backups export, verify and place the files,
are `vectors/embedded_files.py`'s.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
from numpy.typing import NDArray

from ragstore.errors import InvalidInput
from ragstore.valid_text import ascii_digits
from ragstore.vectors.base import (
    CollectionSpec,
    Ids,
    ReplicaIndex,
    SearchMode,
    VectorHit,
    VectorRecord,
    Vectors,
)
from ragstore.vectors.embedded_files import (
    DATA_SUFFIX,
    LOCK_NAME,
    META_SUFFIX,
    EmbeddedFiles,
    index_files,
    usearch_index,
)
from ragstore.vectors.flat import FlatVectors

if TYPE_CHECKING:
    from usearch.index import BatchMatches, Index

__all__ = ["COMPACT_RATIO", "Compaction", "EmbeddedVectorIndex"]

log = logging.getLogger(__name__)
# 2: every vector inserted by one thread (INSERT_THREADS); files of format 1 are rebuilt from SQL.
FORMAT_VERSION = 2
# usearch's parallel `add` races: a node can end up stored but unreachable by any search, at any ef
# (USearch #735, open in 2.26.6). Measured by bench/index_threads.py on 2 cores: parallel inserts stranded
# 1-10 of 20,000 uniform vectors, one thread none, at 0.6x the insert speed. Speed is worth less than a
# chunk that no search can return.
INSERT_THREADS = 1
# Below this many allowed ids, a filtered search scores them exactly instead of walking the graph.
EXACT_FILTER_LIMIT = 20_000
# Up to this many vectors a plain search is exact (usearch's brute force): measured to cost no more than
# the graph walk there (0.38 against 0.35 ms at 1,000 vectors, 1.2 against 0.7 ms at 5,000), and a small
# collection then gets every true neighbour, in the same order on every run.
EXACT_SEARCH_LIMIT = 2_000
# `maintenance optimize` rebuilds a collection's graph when this share of its slots holds removed vectors.
COMPACT_RATIO = 0.2


@dataclass
class _Sub:
    spec: CollectionSpec
    index: Index
    applied_seq: int
    dirty: bool = False
    writes: int = 0  # upserts and deletes since it was loaded: a compaction built meanwhile is discarded
    flat: FlatVectors | None = None  # built on the first selective filter (vectors/flat.py)


@dataclass(frozen=True)
class Compaction:
    """One collection's graph rebuilt from its live vectors (or, in a dry run, that would be)."""

    collection_id: int
    nodes: int  # slots in the graph before, removed ones included
    live: int
    compacted: bool  # False: a dry run, or a write came while it was rebuilt (the next run does it)


class EmbeddedVectorIndex(ReplicaIndex[_Sub], EmbeddedFiles):
    name = "embedded"

    def __init__(
        self,
        directory: Path,
        *,
        connectivity: int = 16,
        expansion_add: int = 64,
        expansion_search: int = 64,
        dtype: str = "f16",
    ) -> None:
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.connectivity = connectivity
        self.expansion_add = expansion_add
        self.expansion_search = expansion_search
        # Breadths tuned per collection (vectors/tuning.py), kept through a drop and rebuild until set again.
        self._expansion: dict[int, int] = {}
        # Half precision: measured 1.6x faster inserts and the same recall as f32 (docs/benchmarks.md).
        self.dtype = dtype
        self.approximate_scores = dtype == "i8"
        super().__init__()

    # -- files ---------------------------------------------------------------------------------------------
    def _paths(self, collection_id: int) -> tuple[Path, Path]:
        return index_files(self.directory, collection_id)

    def _new_index(self, dimension: int) -> Index:
        return usearch_index()(
            ndim=dimension,
            metric="cos",
            dtype=self.dtype,
            connectivity=self.connectivity,
            expansion_add=self.expansion_add,
            expansion_search=self.expansion_search,
        )

    def _load(self, spec: CollectionSpec) -> _Sub:
        data_path, meta_path = self._paths(spec.id)
        index = self._new_index(spec.dimension)
        seq = 0
        if data_path.exists() and meta_path.exists():
            try:
                meta = json.loads(meta_path.read_text())
                expected = (spec.dimension, FORMAT_VERSION, self.dtype)
                found = (meta.get("dimension"), meta.get("format"), meta.get("dtype", "f32"))
                if found[1] == 1:
                    raise ValueError("format 1: built with parallel inserts, which can leave vectors no search reaches")
                if found != expected:
                    raise ValueError(f"the file has (dimension, format, dtype) {found}, the settings want {expected}")
                index.load(str(data_path))
                seq = int(meta["applied_seq"])
            except Exception as exc:  # a damaged file is rebuilt from SQL, never trusted
                log.warning("index file %s cannot be used (%s); it will be rebuilt from the database", data_path, exc)
                index = self._new_index(spec.dimension)
                seq = 0
        # usearch's setter is declared after another property's, which mypy reads as no setter: hence the ignores
        index.expansion_search = self._expansion.get(spec.id, self.expansion_search)  # type: ignore[misc]
        return _Sub(spec, index, seq, dirty=seq == 0)

    # -- contract ------------------------------------------------------------------------------------------
    def ensure_collection(self, spec: CollectionSpec) -> None:
        with self._lock:
            sub = self._subs.get(spec.id)
            if sub is None:
                self._subs[spec.id] = self._load(spec)
            elif sub.spec.dimension != spec.dimension:
                raise InvalidInput(
                    f"collection {spec.id} has dimension {sub.spec.dimension} in the index, not {spec.dimension}"
                )

    def drop_collection(self, collection_id: int) -> None:
        with self._lock:
            self._subs.pop(collection_id, None)
            for path in self._paths(collection_id):
                path.unlink(missing_ok=True)

    def upsert(
        self, collection_id: int, ids: Ids, vectors: Vectors, records: Sequence[VectorRecord] | None = None
    ) -> None:
        if len(ids) == 0:
            return
        with self._lock:
            sub = self._sub(collection_id)
            vectors = np.ascontiguousarray(vectors, dtype=np.float32)
            if vectors.ndim != 2 or vectors.shape[1] != sub.spec.dimension:
                raise InvalidInput(f"vectors must have dimension {sub.spec.dimension}, got shape {vectors.shape}")
            keys = np.asarray(ids, dtype=np.uint64)
            present = np.asarray(sub.index.contains(keys), dtype=bool).reshape(-1)
            if present.any():
                sub.index.remove(keys[present])
            sub.index.add(keys, vectors, threads=INSERT_THREADS)
            if sub.flat is not None:
                sub.flat.upsert(keys.astype(np.int64), vectors)
            sub.dirty = True
            sub.writes += 1

    def delete(self, collection_id: int, ids: Ids) -> None:
        if len(ids) == 0:
            return
        with self._lock:
            sub = self._subs.get(collection_id)
            if sub is None:
                return
            sub.index.remove(np.asarray(ids, dtype=np.uint64))
            if sub.flat is not None:
                sub.flat.delete(np.asarray(ids, dtype=np.int64))
            sub.dirty = True
            sub.writes += 1

    def search(
        self, collection_id: int, vector: Vectors, k: int, allowed_ids: Sequence[int] | None = None
    ) -> list[VectorHit]:
        if allowed_ids is None:
            keys, scores = self.search_keys(collection_id, vector, k)
            return [VectorHit(key, score) for key, score in zip(keys.tolist(), scores.tolist(), strict=True)]
        query = np.asarray(vector, dtype=np.float32).reshape(-1)
        with self._lock:
            sub = self._searchable(collection_id, query, k)
            if sub is None:
                return []
            if len(allowed_ids) <= EXACT_FILTER_LIMIT:
                return self._exact_among(sub, query, k, allowed_ids)
            allowed = set(allowed_ids)
            fetch = k * 4
            while True:
                matches = sub.index.search(query, min(fetch, len(sub.index)))
                hits = [
                    VectorHit(int(key), 1.0 - float(d))
                    for key, d in zip(matches.keys, matches.distances, strict=True)
                    if int(key) in allowed
                ]
                if len(hits) >= k or fetch >= len(sub.index):
                    return hits[:k]
                fetch *= 4

    def search_keys(self, collection_id: int, vector: Vectors, k: int) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
        query = np.asarray(vector, dtype=np.float32).reshape(-1)
        with self._lock:
            sub = self._searchable(collection_id, query, k)
            if sub is None:
                return np.empty(0, np.int64), np.empty(0, np.float64)
            matches = sub.index.search(query, k, exact=len(sub.index) <= EXACT_SEARCH_LIMIT)
        keys = np.asarray(matches.keys, dtype=np.int64)
        return keys, 1.0 - np.asarray(matches.distances, dtype=np.float64)  # in double, as hits' scores always were

    def _searchable(self, collection_id: int, query: NDArray[np.float32], k: int) -> _Sub | None:
        """The open collection `query` searches (None: there is nothing to find); another dimension is refused.
        Called under the lock."""
        sub = self._subs.get(collection_id)
        if sub is None or len(sub.index) == 0 or k <= 0:
            return None
        if query.shape[0] != sub.spec.dimension:
            raise InvalidInput(f"query vector has dimension {query.shape[0]}, the collection {sub.spec.dimension}")
        return sub

    def search_many(self, collection_id: int, vectors: Vectors, k: int) -> list[list[VectorHit]]:
        """One usearch call for the whole matrix: the same hits as `search` for each row, for a fraction of the
        per-call cost (a search batch's dense side)."""
        queries = np.asarray(vectors, dtype=np.float32)
        queries = queries.reshape(len(queries), -1)
        with self._lock:
            sub = self._subs.get(collection_id)
            if sub is None or len(sub.index) == 0 or k <= 0 or not len(queries):
                return [[] for _ in range(len(queries))]
            dimension = sub.spec.dimension
            if queries.shape[1] != dimension:
                raise InvalidInput(f"query vector has dimension {queries.shape[1]}, the collection {dimension}")
            matches = sub.index.search(queries, k, exact=len(sub.index) <= EXACT_SEARCH_LIMIT)
        if not hasattr(matches, "counts"):  # usearch answers a matrix of one row as it would the vector
            return [_hits(matches.keys, matches.distances)]
        batch = cast("BatchMatches", matches)
        counts = batch.counts
        return [_hits(batch.keys[i, : counts[i]], batch.distances[i, : counts[i]]) for i in range(len(queries))]

    def _exact_among(self, sub: _Sub, query: Vectors, k: int, allowed_ids: Sequence[int]) -> list[VectorHit]:
        if not len(allowed_ids):
            return []
        if sub.flat is None:
            sub.flat = _flat_copy(sub, self.dtype)
        keys, similarity = sub.flat.search(query, k, allowed_ids)
        return [VectorHit(int(key), float(score)) for key, score in zip(keys, similarity, strict=True)]

    def count(self, collection_id: int) -> int:
        sub = self._subs.get(collection_id)
        return 0 if sub is None else len(sub.index)

    def iter_ids(self, collection_id: int, batch_size: int = 10_000) -> Iterator[Ids]:
        with self._lock:
            sub = self._subs.get(collection_id)
            keys = np.asarray(sub.index.keys, dtype=np.int64) if sub is not None else np.empty(0, np.int64)
        for start in range(0, len(keys), batch_size):
            yield keys[start : start + batch_size]

    def get(self, collection_id: int, ids: Ids) -> tuple[Ids, Vectors]:
        with self._lock:
            sub = self._subs.get(collection_id)
            if sub is None or len(ids) == 0:
                return np.empty(0, np.int64), np.empty((0, sub.spec.dimension if sub else 0), np.float32)
            keys = np.asarray(ids, dtype=np.uint64)
            keys = keys[np.asarray(sub.index.contains(keys), dtype=bool).reshape(-1)]
            if not len(keys):
                return np.empty(0, np.int64), np.empty((0, sub.spec.dimension), np.float32)
            # In the index's own precision, then one conversion: asking usearch for f32 converts key by key
            # (measured 258 against 187 ms for 20,000 keys).
            matrix = np.asarray(sub.index.get(keys)).astype(np.float32, copy=False).reshape(len(keys), -1)
            return keys.astype(np.int64), matrix

    def collection_ids(self) -> list[int]:
        """Open collections and every collection file in the directory (a file SQL no longer knows is drift)."""
        with self._lock:
            on_disk = {int(p.stem) for p in self.directory.glob(f"*{DATA_SUFFIX}") if ascii_digits(p.stem)}
            return sorted(on_disk | set(self._subs))

    def dimension(self, collection_id: int) -> int | None:
        sub = self._subs.get(collection_id)
        if sub is not None:
            return sub.spec.dimension
        _, meta_path = self._paths(collection_id)
        try:
            return int(json.loads(meta_path.read_text())["dimension"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def search_mode(self, collection_id: int) -> SearchMode:
        sub = self._subs.get(collection_id)
        return "graph" if sub is not None and len(sub.index) > EXACT_SEARCH_LIMIT else "exact"

    def set_expansion_search(self, collection_id: int, ef: int | None) -> int | None:
        with self._lock:
            previous = self._expansion.pop(collection_id, None)
            if ef is not None:
                self._expansion[collection_id] = ef
            sub = self._subs.get(collection_id)
            if sub is not None:
                sub.index.expansion_search = self.expansion_search if ef is None else ef  # type: ignore[misc]
            return previous

    def _changed(self, sub: _Sub) -> None:
        sub.dirty = True  # the sidecar's applied_seq must be saved with the vectors it covers

    def is_durable(self) -> bool:
        return True

    def persist(self) -> None:
        with self._lock:
            dirty = [(cid, sub) for cid, sub in self._subs.items() if sub.dirty]
            if not dirty:
                return
            with open(self.directory / LOCK_NAME, "a+b") as lock_file:
                fcntl.flock(lock_file, fcntl.LOCK_EX)
                for cid, sub in dirty:
                    self._save(cid, sub)

    def _saved_seq(self, meta_path: Path) -> int:
        try:
            return int(json.loads(meta_path.read_text())["applied_seq"])
        except (OSError, ValueError, KeyError, TypeError):
            return 0

    def _save(self, collection_id: int, sub: _Sub) -> None:
        data_path, meta_path = self._paths(collection_id)
        if self._saved_seq(meta_path) > sub.applied_seq:
            # Another process's replica saved a newer state; ours is not lost, it replays on the next open.
            sub.dirty = False
            return
        tmp_data = data_path.with_suffix(f"{DATA_SUFFIX}.tmp")
        sub.index.save(str(tmp_data))
        _fsync(tmp_data)
        os.replace(tmp_data, data_path)
        meta = {
            "format": FORMAT_VERSION,
            "dimension": sub.spec.dimension,
            "metric": sub.spec.metric,
            "dtype": self.dtype,
            "applied_seq": sub.applied_seq,
            "count": len(sub.index),
        }
        tmp_meta = meta_path.with_suffix(f"{META_SUFFIX}.tmp")
        tmp_meta.write_text(json.dumps(meta))
        _fsync(tmp_meta)
        os.replace(tmp_meta, meta_path)
        sub.dirty = False

    def compact(self, min_removed: float = COMPACT_RATIO, *, dry_run: bool = False) -> list[Compaction]:
        """Rebuild each open collection whose removed slots are at least `min_removed` of its graph.

        usearch marks a removed vector and reuses its slot for a later add, so slots stay removed only
        where deletes outnumber the adds after them (a pruned corpus); searches still walk past them and the
        file keeps their bytes. The new graph is built outside the lock from the live vectors (searches go
        on meanwhile) and swapped in only if no write came in between."""
        found: list[Compaction] = []
        with self._lock:
            candidates = [(cid, sub) for cid, sub in self._subs.items() if _removed_share(sub.index) >= min_removed]
        for cid, sub in candidates:
            with self._lock:
                nodes, live, writes = int(sub.index.stats.nodes), len(sub.index), sub.writes
                keys = np.asarray(sub.index.keys, dtype=np.uint64)
                vectors = np.asarray(sub.index.get(keys)).astype(np.float32, copy=False).reshape(len(keys), -1)
            if dry_run:
                found.append(Compaction(cid, nodes, live, compacted=False))
                continue
            rebuilt = self._new_index(sub.spec.dimension)
            if len(keys):
                rebuilt.add(keys, vectors, threads=INSERT_THREADS)
            with self._lock:
                swapped = sub.writes == writes and self._subs.get(cid) is sub
                if swapped:
                    rebuilt.expansion_search = sub.index.expansion_search  # type: ignore[misc]  # a tuned one stays
                    sub.index, sub.dirty = rebuilt, True
            found.append(Compaction(cid, nodes, live, compacted=swapped))
        if not dry_run:
            self.persist()
        return found

    def close(self) -> None:
        self.persist()
        with self._lock:
            self._subs.clear()


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _flat_copy(sub: _Sub, dtype: str) -> FlatVectors:
    """The collection's vectors copied out of the graph once, 50,000 at a time (about 1 s per 100,000)."""
    flat = FlatVectors(sub.spec.dimension, dtype)
    keys = np.asarray(sub.index.keys, dtype=np.uint64)
    for start in range(0, len(keys), 50_000):
        part = keys[start : start + 50_000]
        flat.upsert(part.astype(np.int64), np.asarray(sub.index.get(part)).reshape(len(part), -1))
    log.info(
        "collection %d: flat copy of %d vectors for filtered search (%d MB)", sub.spec.id, len(flat), flat.nbytes >> 20
    )
    return flat


def _removed_share(index: Index) -> float:
    nodes = int(index.stats.nodes)
    return (nodes - len(index)) / nodes if nodes else 0.0


def _hits(keys: Any, distances: Any) -> list[VectorHit]:
    """usearch's keys and cosine distances of one query as hits scored by similarity."""
    return [VectorHit(int(key), 1.0 - float(d)) for key, d in zip(keys, distances, strict=True)]
