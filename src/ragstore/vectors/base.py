"""The VectorIndex contract: what every vector backend must do, method by method.

An index is derived data. It is keyed by chunk id, holds one sub-index per ragstore collection, and can be
dropped and rebuilt from SQL at any time. Every mutating method is idempotent, because the outbox replays
operations after a crash and an operation may reach the index twice.

Three small base classes, so that a backend implements only what it is:

- `VectorIndex`: the store operations every backend implements (abstract), and defaults for the rest. A
  backend that subclasses only this one is *shared*: one store serves every process (Milvus, Chroma).
- `ReplicaIndex`: a *process-local* index (each process holds its own replica, like the embedded and the
  in-memory ones) adds the replica bookkeeping: how far it has followed the outbox.
- `KeepsFiles`: a backend whose index is files in the data directory (the embedded one) exports, verifies
  and places those files itself, so backup and restore never learn their names or layout.
"""

from __future__ import annotations

import abc
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Generic, Literal, Protocol, TypeVar

import numpy as np
from numpy.typing import NDArray

from ragstore.errors import NotFound

C = TypeVar("C", bound="ReplicaCollection")

__all__ = [
    "RERANK_CANDIDATES",
    "CollectionSpec",
    "IndexFilesDamaged",
    "KeepsFiles",
    "ReplicaCollection",
    "ReplicaIndex",
    "SearchMode",
    "VectorHit",
    "VectorIndex",
    "VectorRecord",
    "search_depth",
]

Vectors = NDArray[np.float32]
Ids = NDArray[np.int64]
# How a plain search of a collection runs: "graph" walks an approximate graph whose breadth (HNSW ef) can be
# set per collection; "exact" compares every vector (nothing to tune); "fixed" is a backend that exposes no
# breadth (Chroma). vectors/tuning.py measures the "graph" ones.
SearchMode = Literal["graph", "exact", "fixed"]


@dataclass(frozen=True)
class CollectionSpec:
    id: int
    dimension: int
    metric: str = "cosine"


@dataclass(frozen=True)
class VectorHit:
    id: int
    score: float  # cosine similarity: higher is closer


@dataclass(frozen=True)
class VectorRecord:
    """What a backend may keep beside a vector, for people and tools that read the vector store directly.

    ragstore never trusts these fields (SQL decides what a search shows); Milvus and Chroma store them as
    scalar fields and metadata, the in-process indexes ignore them.
    """

    document_id: int
    content_hash: str
    metadata: dict[str, Any] = field(default_factory=dict)


class IndexFilesDamaged(ValueError):
    """A file-keeping backend's files cannot be trusted (unreadable, or disagreeing with their own sidecar).

    Raised by `KeepsFiles.verify_files`; backup turns it into BackupDamaged with the same message.
    """


# Candidates an approximate index is asked for per result shown (and at least 20 more): enough that the true
# top k is among them, for SQL's float32 vectors to re-rank (search/rerank.py).
RERANK_CANDIDATES = 3


def search_depth(n: int, *, approximate: bool) -> int:
    """How many candidates a search showing `n` asks its index for: more when the index's scores are approximate
    and re-ranked. Here, below both, because the dense search and the tuner (which measures recall at this
    depth, indexing/tuning.py) must ask the same."""
    return max(RERANK_CANDIDATES * n, n + 20) if approximate else n


class VectorIndex(abc.ABC):
    """A vector store shared by every process, and the base of every backend.

    Class attributes: `name` is the registry name (`RAGSTORE_VECTOR_BACKEND`); `shared` is True when one
    store serves every process, so an operation applied by any process is in it and nobody replays another's
    work (ReplicaIndex sets it False); `wants_records` is True when `upsert` uses its `records` (the outbox
    applier reads document ids and metadata from SQL only for such backends).
    """

    name: ClassVar[str]
    shared: ClassVar[bool] = True
    wants_records: ClassVar[bool] = False
    # True when the index's scores are too coarse to rank by (8-bit vectors): search re-ranks its candidates
    # with the float32 vectors SQL holds.
    approximate_scores: bool = False

    # -- store operations: every backend implements these ----------------------------------------------------
    @abc.abstractmethod
    def ensure_collection(self, spec: CollectionSpec) -> None:
        """Create (or open) the collection's sub-index. Idempotent: a no-op if it exists with this dimension.

        Raises InvalidInput if it exists with another dimension, Unavailable when the store cannot be reached.
        """

    @abc.abstractmethod
    def drop_collection(self, collection_id: int) -> None:
        """Remove the sub-index and whatever it stores. Idempotent: dropping a missing collection does nothing."""

    @abc.abstractmethod
    def upsert(
        self, collection_id: int, ids: Ids, vectors: Vectors, records: Sequence[VectorRecord] | None = None
    ) -> None:
        """Insert or replace vectors by id (with `records` aligned to ids, if given). Idempotent.

        Empty `ids` store nothing. Raises InvalidInput on a dimension mismatch, NotFound or InvalidInput for a
        collection not ensured (never a silent success), Unavailable when the store cannot be reached.
        """

    @abc.abstractmethod
    def delete(self, collection_id: int, ids: Ids) -> None:
        """Remove vectors by id. Idempotent: missing ids, and a missing collection, are ignored."""

    @abc.abstractmethod
    def search(
        self, collection_id: int, vector: Vectors, k: int, allowed_ids: Sequence[int] | None = None
    ) -> list[VectorHit]:
        """Up to k nearest vectors, best first (cosine similarity); only among `allowed_ids` when given.

        A missing or empty collection, `k <= 0` or an empty `allowed_ids` gives []. Read-only.
        """

    def search_keys(self, collection_id: int, vector: Vectors, k: int) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
        """`search` (no filter) as arrays of keys and similarities, best first. Read-only.

        For a caller that checks hundreds of candidates against a filter in numpy (search/dense.py) and
        shows ten: a hit object per candidate cost more than the check. The default converts `search`."""
        hits = self.search(collection_id, vector, k)
        keys = np.fromiter((h.id for h in hits), dtype=np.int64, count=len(hits))
        return keys, np.fromiter((h.score for h in hits), dtype=np.float64, count=len(hits))

    def search_many(self, collection_id: int, vectors: Vectors, k: int) -> list[list[VectorHit]]:
        """`search` (no filter) for each row of `vectors`, in order. Read-only.

        This default asks one vector at a time; a backend that searches a matrix in one call overrides it (the
        embedded index: a search batch's dense side in one usearch call, search/batch.py)."""
        queries = np.asarray(vectors, dtype=np.float32)
        return [self.search(collection_id, row, k) for row in queries.reshape(len(queries), -1)]

    @abc.abstractmethod
    def count(self, collection_id: int) -> int:
        """Number of vectors in the collection; 0 if it does not exist. Read-only."""

    @abc.abstractmethod
    def iter_ids(self, collection_id: int, batch_size: int = 10_000) -> Iterator[Ids]:
        """Every id in the collection, in batches of at most `batch_size`; nothing for a missing collection."""

    @abc.abstractmethod
    def get(self, collection_id: int, ids: Ids) -> tuple[Ids, Vectors]:
        """The stored vectors of those ids that are present, as (ids, vectors); missing ids are left out.

        A missing collection gives two empty arrays. The order need not follow `ids`.
        """

    @abc.abstractmethod
    def collection_ids(self) -> list[int]:
        """Every collection the index holds (open or stored), including ones SQL no longer knows (drift)."""

    @abc.abstractmethod
    def dimension(self, collection_id: int) -> int | None:
        """The dimension the index holds for a collection, or None if it holds no such collection."""

    # -- durability: defaults fit a store that writes through ------------------------------------------------
    def is_durable(self) -> bool:
        """False for an index that keeps nothing across restarts (rebuilt from SQL on every open)."""
        return True

    def persist(self) -> None:
        """Make every applied change durable (and, for a replica, its applied_seq). Idempotent; cheap when
        nothing changed. The default does nothing: a write-through store is durable once upsert returns."""
        return None

    def close(self) -> None:
        """Persist and release resources. Idempotent; the index is not used afterwards."""
        self.persist()

    # -- replica bookkeeping: defaults of a shared store (ReplicaIndex overrides them) -----------------------
    def applied_seq(self, collection_id: int) -> int:
        """Highest outbox operation id whose effect is durable in this index; 0 = nothing known.

        A shared store answers 0: every finished operation is in it, whichever process applied it.
        """
        return 0

    def mark_applied(self, collection_id: int, seq: int) -> None:
        """Record that operation `seq` is applied (durable at the next persist). A shared store ignores it."""
        return None

    # -- search breadth: defaults of a backend that exposes none (issue 22: vectors/tuning.py) ---------------
    def search_mode(self, collection_id: int) -> SearchMode:
        """How a plain search of the collection runs now (see SearchMode). Read-only."""
        return "fixed"

    def set_expansion_search(self, collection_id: int, ef: int | None) -> int | None:
        """Search the collection with breadth `ef` from now on (None: the configured default), and return the
        breadth set before (None: it had the default). Kept for a collection not open yet, and through a drop
        and rebuild, until set again. A backend whose mode is never "graph" ignores it."""
        return None

    def search_at(self, collection_id: int, vector: Vectors, k: int, ef: int) -> list[VectorHit]:
        """A plain search at breadth `ef` for this call alone (tuning measures a ladder of breadths with it);
        every other search keeps the collection's breadth meanwhile. Read-only. The default is `search`."""
        return self.search(collection_id, vector, k)


class ReplicaCollection(Protocol):
    """What a replica keeps per open collection, at the least: its watermark."""

    applied_seq: int


class ReplicaIndex(VectorIndex, Generic[C]):
    """A process-local index: each process holds its own replica and follows the outbox to stay level.

    Its watermark (`applied_seq`) tells the applier where to replay from after a restart or after another
    process wrote; an index that is not durable is rebuilt from SQL at every open. The open collections and
    their watermarks are kept here, so every replica backend keeps them alike.
    """

    shared: ClassVar[bool] = False

    def __init__(self) -> None:
        self._subs: dict[int, C] = {}
        self._lock = threading.RLock()

    def _sub(self, collection_id: int) -> C:
        """The open collection, or NotFound (an operation on a collection never ensured is the caller's bug)."""
        sub = self._subs.get(collection_id)
        if sub is None:
            raise NotFound(f"vector collection {collection_id} is not open in the index")
        return sub

    def applied_seq(self, collection_id: int) -> int:
        """Highest outbox operation id this replica holds (durably, for a durable one); 0 for a collection not
        open or never marked. Never goes down while the collection stays open."""
        sub = self._subs.get(collection_id)
        return 0 if sub is None else sub.applied_seq

    def mark_applied(self, collection_id: int, seq: int) -> None:
        """Raise the collection's watermark to `seq` (a lower `seq` is ignored; a collection not open is
        ignored). Idempotent. Durable at the next `persist()`, together with the vectors it covers."""
        with self._lock:
            sub = self._subs.get(collection_id)
            if sub is not None and seq > sub.applied_seq:
                sub.applied_seq = seq
                self._changed(sub)

    def _changed(self, sub: C) -> None:
        """A collection's state moved (its watermark): a durable replica notes it must save."""

    def search_at(self, collection_id: int, vector: Vectors, k: int, ef: int) -> list[VectorHit]:
        """The breadth set, the search run and the breadth restored under the replica's lock, which a replica's
        `search` takes too: no other search of this process runs at the measured breadth. (A backend whose
        search runs outside the lock overrides this.)"""
        with self._lock:
            previous = self.set_expansion_search(collection_id, ef)
            try:
                return self.search(collection_id, vector, k)
            finally:
                self.set_expansion_search(collection_id, previous)


class KeepsFiles(abc.ABC):
    """A backend whose index is files in one directory (`Settings.index_dir`), which backups carry.

    Classmethods, because backup and restore work on directories and folders, not on an open index. Only
    the backend knows its file names; the backup knows only "the index folder" and the counts returned.
    """

    @classmethod
    @abc.abstractmethod
    def export_files(cls, directory: Path, collection_ids: Sequence[int], dest: Path) -> dict[int, int]:
        """Copy the saved files of these collections from `directory` into `dest` (created if missing), as
        one consistent state (no process replaces them meanwhile). Returns the vector count of each collection
        exported; a collection never saved is skipped (a restore rebuilds it from SQL). Read-only on
        `directory`."""

    @classmethod
    @abc.abstractmethod
    def verify_files(cls, folder: Path) -> dict[int, int]:
        """Load every collection's files in `folder` (an export, reassembled) and return its vector count,
        read from the files themselves. Raises IndexFilesDamaged naming the file that cannot be trusted. An
        empty or missing folder gives {}. Read-only."""

    @classmethod
    @abc.abstractmethod
    def files_size(cls, directory: Path) -> int:
        """About how many bytes an export of `directory` occupies (for a free-space check); 0 if missing."""

    @classmethod
    @abc.abstractmethod
    def place_files(cls, restored: Path, directory: Path, *, aside: Path | None) -> None:
        """Make `directory` hold exactly the restored export `restored` (moved, not copied).

        What `directory` held goes to `aside` (or is deleted when `aside` is None), since files newer than a
        restored database would hold vectors it does not know. A missing `restored` leaves `directory` absent
        (the store rebuilds from SQL). Not atomic across the two moves; the caller holds the store closed.
        """
