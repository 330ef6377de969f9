"""The index sub-facade, `store.index`: the state of the derived indexes and the work that rebuilds or moves them.

Everything here derives from SQL (principle 1): a rebuild, a re-analysis or a move to another backend never
calls an embedding API, except `reembed`, which exists for the chunks whose stored embedding is unusable.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ragstore.config import Settings
from ragstore.documents.catalog import Catalog, CollectionRef
from ragstore.errors import InvalidInput
from ragstore.indexing.tuning import IndexTuner
from ragstore.lexical.base import LexicalIndex
from ragstore.lexical.indexer import LexicalIndexer
from ragstore.schemas import (
    CollectionIndexState,
    CollectionTuning,
    IndexStatus,
    LexicalState,
    LexicalStatus,
    OutboxCounts,
    RebuildReport,
    ReembedReport,
    RelexReport,
    SyncReport,
    TuningReport,
)
from ragstore.security.audit import AuditTrail
from ragstore.sync.applier import OutboxApplier
from ragstore.sync.changes import ChangeFeed
from ragstore.vectors.base import VectorIndex
from ragstore.vectors.migration import FindDrift, IndexMigration, MigrationReport
from ragstore.vectors.registry import create_vector_index, migration_targets

__all__ = ["IndexService"]

Progress = Callable[[int, int], None]


@dataclass(kw_only=True, slots=True)
class IndexService:
    """`wiring.build` makes `reembed_chunks` and `drift` for it; each other field is the store's component of
    that name."""

    settings: Settings
    vectors: VectorIndex
    catalog: Catalog
    applier: OutboxApplier
    changes: ChangeFeed
    lexical: LexicalIndex
    lexical_indexer: LexicalIndexer
    reembed_chunks: Callable[[str], dict[str, int]]
    drift: FindDrift  # the consistency checker's view of a target index, handed in (a feature of its own)
    audit_trail: AuditTrail  # rebuilds and migrations are recorded, success or failure
    tuner: IndexTuner  # each collection's search breadth (indexing/tuning.py)

    @property
    def backend(self) -> str:
        """The vector backend this store's vectors live in."""
        return self.vectors.name

    def status(self) -> IndexStatus:
        """The vector backend, the outbox, and how far each collection's vectors and lexical terms are."""
        return IndexStatus(
            backend=self.vectors.name,
            outbox=self.outbox_counts(),
            lexical=LexicalStatus(backend=self.lexical.name, collections=self.lexical_status()),
            collections=[
                CollectionIndexState(name=c.name, indexed_chunks=c.indexed_chunk_count, chunks=c.chunk_count)
                for c in self.catalog.list_collections()
            ],
        )

    def wait(self, timeout_s: float = 600.0) -> None:
        """Block until no outbox operation is pending (raises Unavailable on timeout)."""
        self.changes.wait_until_applied(timeout_s)

    def sync_now(self) -> SyncReport:
        """Apply every operation due in the outbox now, ignoring backoff schedules."""
        stats = self.applier.apply_pending(ignore_schedule=True)
        return SyncReport(applied=stats.applied, failed=stats.failed, dead=stats.dead)

    def persist(self) -> None:
        """Write the index replica to disk and drop outbox rows it now holds durably."""
        self.applier.persist()

    def outbox_counts(self) -> OutboxCounts:
        return OutboxCounts.model_validate(self.applier.counts())

    def tune(self, collection: str | None = None) -> TuningReport:
        """Measure the search breadth each collection (or the named one) needs for RAGSTORE_TARGET_RECALL now,
        keep it in SQL and search at it; collections searched exactly are reported as such. Audited."""
        targets = self._targets(collection)
        with self.audit_trail.recorded("index.tune", target=collection or "*") as details:
            self.applier.persist()  # Milvus: flushed, so its index type is current and no row is in a growing segment
            report = self._report(self.tuner.tune(targets))
            details["ef_search"] = {c.collection: c.ef_search for c in report.collections if c.state == "tuned"}
        return report

    def tune_due(self) -> TuningReport:
        """Follow the breadths other processes stored, then measure the collections that are due
        (indexing/tuning.py says when): the server's check and `maintenance optimize` run this. Audited when
        something was measured."""
        targets = self.catalog.active_refs()
        self.tuner.apply_stored(targets)
        report = self._report(self.tuner.tune(targets, only_due=True))
        tuned = {c.collection: c.ef_search for c in report.collections if c.state == "tuned"}
        if tuned:
            self.audit_trail.record_quietly("index.tune", target="*", details={"ef_search": tuned, "due": True})
        return report

    def tuning(self, collection: str | None = None) -> TuningReport:
        """What each collection searches at and the measurement behind it; nothing is measured."""
        return self._report(self.tuner.state(self._targets(collection)))

    def apply_tuning(self) -> int:
        """Set every collection's stored breadth on this process's index (at open); how many had one."""
        return self.tuner.apply_stored(self.catalog.active_refs())

    def _report(self, collections: list[CollectionTuning]) -> TuningReport:
        return TuningReport(backend=self.vectors.name, target_recall=self.tuner.target, collections=collections)

    def rebuild(self, collection: str | None = None, *, progress: Progress | None = None) -> RebuildReport:
        """Rebuild vector indexes from the chunks and embeddings in SQL; no embedding call is made."""
        with self.audit_trail.recorded("index.rebuild", target=collection or "*") as details:
            report = RebuildReport(
                vectors={ref.name: self.applier.rebuild(ref.id, progress=progress) for ref in self._targets(collection)}
            )
            details["vectors"] = report.vectors
        return report

    def relex(self, collection: str | None = None, *, progress: Progress | None = None) -> RelexReport:
        """Rebuild lexical terms with the configured analyzer (all collections, or one), even if current."""
        analysed = {}
        for ref in self._targets(collection):
            analysed[ref.name] = self.lexical_indexer.reindex(ref.id, progress=progress, force=True)
            self.changes.announce({ref.id})
        return RelexReport(chunks_analysed=analysed)

    def _targets(self, collection: str | None) -> list[CollectionRef]:
        """The named collection, or every active one."""
        return [self.catalog.resolve(collection)] if collection is not None else self.catalog.active_refs()

    def bring_lexical_current(self, progress: Progress | None = None) -> list[int]:
        """Re-index every collection whose terms another analyzer built (or none yet); returns their ids."""
        done = []
        for ref in self.catalog.active_refs():
            if not self.lexical_indexer.is_current(self.lexical_indexer.state(ref.id, fresh=True)):
                self.lexical_indexer.reindex(ref.id, progress=progress)
                self.changes.announce({ref.id})
                done.append(ref.id)
        return done

    def lexical_status(self) -> list[LexicalState]:
        """Which analyzer built each collection's terms, and whether it is the configured one."""
        target = self.lexical_indexer.target()
        out = []
        for ref in self.catalog.active_refs():
            state = self.lexical_indexer.state(ref.id, fresh=True)
            out.append(
                LexicalState(
                    collection=ref.name,
                    analyzer=state.analyzer if state else None,
                    version=state.version if state else None,
                    current=self.lexical_indexer.is_current(state),
                    configured=f"{target.name} {target.version}",
                )
            )
        return out

    def reembed(self, collection: str) -> ReembedReport:
        """Embed again the chunks of a collection that lack a usable embedding (wrong dimension or none)."""
        result = ReembedReport.model_validate(self.reembed_chunks(collection))
        if result.queued:
            self.changes.announce({self.catalog.resolve(collection).id})
            self.changes.apply_now()
        return result

    def migrate(self, target: str, *, progress: Callable[[str, int, int], None] | None = None) -> MigrationReport:
        """Rebuild the vectors in another backend from SQL, verify it agrees, and switch the store to it.

        Resumes an interrupted migration to the same target. Other processes keep their open index until
        they restart; the target's settings (MILVUS_URI, CHROMA_URL, ...) come from this store's Settings.
        """
        with self.audit_trail.recorded("index.migrate", target=target, source=self.vectors.name):
            return self._migrate(target, progress)

    def _migrate(self, target: str, progress: Callable[[str, int, int], None] | None) -> MigrationReport:
        if target not in migration_targets():
            raise InvalidInput(f"--to must be one of {', '.join(migration_targets())} (got {target!r})")
        if target == self.vectors.name:
            raise InvalidInput(f"the store's vectors are already in {target}")
        target_settings = self.settings.model_copy(update={"vector_backend": target})
        target_index = create_vector_index(target_settings)
        try:
            migration = IndexMigration(
                self.catalog.db,
                self.vectors,
                target_index,
                target_name=target,
                records=self.applier.records,
                drift=self.drift,
            )
            with self.applier.lock:
                self.applier.advance()
            return migration.run(progress)
        finally:
            target_index.close()
