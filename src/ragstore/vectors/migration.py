"""Moving the vectors to another backend (`ragstore index migrate --to milvus|chroma|embedded`).

The relational store is the system of record, so a migration is a rebuild into the target from the chunks
and embeddings SQL holds (no embedding call), then a proof that the target agrees, then a switch:

1. copy every indexed chunk's vector into the target, collection by collection in chunk-id order, saving
   the position after each batch in `store_state` (`index_migration`), so an interrupted migration resumes
   where it stopped;
2. level the target with SQL as it is *now* (writes went on meanwhile through the active backend): the
   consistency checker (handed in as `drift`, since the checker is a feature above this package) compares
   the target with SQL, and what it misses or holds too much is mended;
3. verify: the target's count equals SQL's indexed count for every collection, and the same queries (the
   vectors of sampled chunks) return the same top-10 from the source and the target;
4. switch: `store_state.vector_backend` names the target; every process that opens the store after this
   uses it (a configured RAGSTORE_VECTOR_BACKEND that disagrees is refused, naming this command).

The source index is left as it was, for a migration back or a look; delete it by hand when satisfied.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import KW_ONLY, dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import func, select

from ragstore.db.chunk_vectors import iter_indexed_vectors, vectors_for_chunks
from ragstore.db.engine import Database
from ragstore.db.models import ChunkStatus, Collection, CollectionStatus, DocumentChunk, SyncOperation
from ragstore.db.state import VECTOR_BACKEND_KEY, read_state, write_state
from ragstore.errors import Conflict
from ragstore.vectors.base import CollectionSpec, VectorIndex, VectorRecord

__all__ = ["BACKEND_KEY", "MIGRATION_KEY", "FindDrift", "IndexMigration", "MigrationReport"]

log = logging.getLogger(__name__)
BACKEND_KEY = VECTOR_BACKEND_KEY
MIGRATION_KEY = "index_migration"
BATCH = 5_000
SAMPLE_QUERIES = 20
MIN_AGREEMENT = 0.9  # share of the source's top-10 the target must also return (both may be approximate)
Progress = Callable[[str, int, int], None]
RecordsFn = Callable[[np.ndarray], list[VectorRecord] | None]
# (index, collection name, collection id) -> (ids SQL holds indexed that the index lacks or holds stale,
# ids the index holds that SQL does not)
FindDrift = Callable[[VectorIndex, str, int], tuple[list[int], list[int]]]


@dataclass
class MigrationReport:
    source: str
    target: str
    resumed: bool
    copied: dict[str, int] = field(default_factory=dict)
    levelled: dict[str, int] = field(default_factory=dict)  # vectors mended after the copy
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    agreement: dict[str, float] = field(default_factory=dict)  # mean top-10 overlap of sampled queries
    seconds: float = 0.0


@dataclass
class IndexMigration:
    db: Database
    source: VectorIndex
    target: VectorIndex
    _: KW_ONLY
    target_name: str
    records: RecordsFn
    drift: FindDrift

    def run(self, progress: Progress | None = None) -> MigrationReport:
        started = time.perf_counter()
        state = read_state(self.db, MIGRATION_KEY)
        resumed = state is not None and state.get("target") == self.target_name
        if not resumed:
            state = {"target": self.target_name, "positions": {}, "done": []}
            write_state(self.db, MIGRATION_KEY, state)
        assert state is not None
        report = MigrationReport(self.source.name, self.target_name, resumed)
        with self.db.read() as s:
            collections = s.execute(
                select(
                    Collection.id, Collection.name, Collection.dimension, Collection.metric, Collection.embedding_model
                )
                .where(Collection.status == CollectionStatus.ACTIVE)
                .order_by(Collection.id)
            ).all()
        for cid, name, dimension, metric, model in collections:
            self.target.ensure_collection(CollectionSpec(int(cid), int(dimension), metric))
            if int(cid) not in state["done"]:
                report.copied[name] = self._copy(int(cid), name, model, int(dimension), state, progress)
        self.target.persist()
        for cid, name, dimension, _metric, model in collections:
            report.levelled[name] = self._level(int(cid), name, model, int(dimension))
        self._mark_position(collections)
        self.target.persist()
        for cid, name, dimension, _metric, _model in collections:
            report.counts[name], report.agreement[name] = self._verify(int(cid), name, int(dimension))
        write_state(self.db, BACKEND_KEY, {"backend": self.target_name, "switched_from": self.source.name})
        write_state(self.db, MIGRATION_KEY, None)
        report.seconds = round(time.perf_counter() - started, 2)
        log.info("vector index migrated from %s to %s: %s", self.source.name, self.target_name, report)
        return report

    def _copy(
        self, cid: int, name: str, model: str, dimension: int, state: dict[str, Any], progress: Progress | None
    ) -> int:
        after = int(state["positions"].get(str(cid), 0))
        total = self._indexed_count(cid)
        done = 0
        for batch in iter_indexed_vectors(self.db, cid, model, dimension, batch_size=BATCH, after=after):
            self.target.upsert(cid, batch.ids, batch.vectors, self.records(batch.ids))
            done += len(batch.ids)
            state["positions"][str(cid)] = batch.last
            write_state(self.db, MIGRATION_KEY, state)  # resume from here if interrupted
            if progress:
                progress(name, done, total)
        state["done"].append(cid)
        write_state(self.db, MIGRATION_KEY, state)
        return done

    def _level(self, cid: int, name: str, model: str, dimension: int) -> int:
        """Mend what changed in SQL during the copy (and what an interrupted copy left unsaved)."""
        mended = 0
        for _ in range(3):
            missing, orphans = self.drift(self.target, name, cid)
            if not missing and not orphans:
                return mended
            if orphans:
                self.target.delete(cid, np.asarray(orphans, dtype=np.int64))
            for start in range(0, len(missing), BATCH):
                part = missing[start : start + BATCH]
                with self.db.read() as s:
                    hashes = s.execute(
                        select(DocumentChunk.id, DocumentChunk.content_hash).where(DocumentChunk.id.in_(part))
                    ).all()
                    ids, vectors = vectors_for_chunks(s, model, dimension, [(int(i), h) for i, h in hashes])
                self.target.upsert(cid, ids, vectors, self.records(ids))
            mended += len(missing) + len(orphans)
        return mended

    def _mark_position(self, collections: Sequence[Any]) -> None:
        """A replica target (embedded) records how far the outbox is reflected, so its next open replays on."""
        with self.db.read() as s:
            newest = int(s.scalar(select(func.max(SyncOperation.id))) or 0)
        for row in collections:
            self.target.mark_applied(int(row[0]), max(newest, 1))

    def _indexed_count(self, cid: int) -> int:
        with self.db.read() as s:
            return int(
                s.scalar(
                    select(func.count()).where(
                        DocumentChunk.collection_id == cid, DocumentChunk.status == ChunkStatus.INDEXED
                    )
                )
                or 0
            )

    def _verify(self, cid: int, name: str, dimension: int) -> tuple[dict[str, int], float]:
        indexed = self._indexed_count(cid)
        counts = {"sql_indexed": indexed, "source": self.source.count(cid), "target": self.target.count(cid)}
        if counts["target"] != indexed:
            raise Conflict(
                f"index migration to {self.target_name}: collection {name!r} holds {counts['target']} vectors in "
                f"the target, SQL {indexed} indexed chunks; nothing was switched (run the command again)"
            )
        with self.db.read() as s:
            every = np.fromiter(
                s.scalars(
                    select(DocumentChunk.id).where(
                        DocumentChunk.collection_id == cid, DocumentChunk.status == ChunkStatus.INDEXED
                    )
                ),
                dtype=np.int64,
            )
        sample_ids = (
            every[np.linspace(0, len(every) - 1, min(SAMPLE_QUERIES, len(every))).astype(int)] if len(every) else every
        )
        if not len(sample_ids) or counts["source"] == 0:
            return counts, 1.0
        found_ids, queries = self.target.get(cid, sample_ids)
        overlaps = []
        for vector in queries:
            want = {h.id for h in self.source.search(cid, vector, 10)}
            got = {h.id for h in self.target.search(cid, vector, 10)}
            overlaps.append(len(want & got) / max(len(want), 1))
        agreement = round(float(np.mean(overlaps)), 4) if overlaps else 1.0
        if agreement < MIN_AGREEMENT:
            raise Conflict(
                f"index migration to {self.target_name}: for collection {name!r} the target returns {agreement:.0%} "
                f"of the source's top-10 on {len(found_ids)} sampled queries (at least {MIN_AGREEMENT:.0%} needed); "
                "nothing was switched"
            )
        return counts, agreement
