"""RagStore: the one facade. The CLI, the HTTP API and Python users all call it.

It keeps the lifecycle (open, recover, close) and hands out one sub-facade per feature: `store.collections`,
`store.documents`, `store.search`, `store.analytics`, `store.index`, `store.consistency`, `store.backups`,
`store.jobs`, `store.ops`, `store.keys`, `store.users`, `store.usage`, `store.secrets`, `store.audit`,
`store.chat`.
`RagStore.open()`
verifies the schema (and its migration checksums), opens the vector index and brings it level with SQL
(rebuild or outbox replay) before the first request, so a store that opens is consistent. Building the
parts is `wiring.py`'s job.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from types import TracebackType

from sqlalchemy import select

from ragstore.backup import restore as backup_restore
from ragstore.backup.errors import BackupFailed
from ragstore.backup.manifest import Manifest
from ragstore.backup.snapshot import count_collections
from ragstore.backup.verify import check_counts
from ragstore.clock import SYSTEM_CLOCK, Clock
from ragstore.config import Settings, load_settings
from ragstore.db.engine import Database
from ragstore.db.models import Collection, CollectionStatus, RunState
from ragstore.embeddings.base import Embedder
from ragstore.embeddings.factory import create_embedder
from ragstore.errors import RagstoreError
from ragstore.lexical.memory import MemoryLexicalIndex
from ragstore.migrations import Migrator
from ragstore.schemas import MAX_SEARCH_DEPTH, RestoreConsistency, RestoredCheck, RestoreReport
from ragstore.security.audit import Outcome
from ragstore.security.audit_service import record_beside
from ragstore.security.audit_verify import verify_log
from ragstore.security.checkpoints import CheckpointSigner, signer_from_settings
from ragstore.sync.applier import RecoveryReport
from ragstore.sync.worker import SyncWorker
from ragstore.vectors.base import VectorIndex
from ragstore.vectors.registry import create_vector_index
from ragstore.vectors.unopened import UnopenedIndex
from ragstore.wiring import active_backend, build, record_usage

__all__ = ["MAX_K", "RagStore", "restore_backup"]

log = logging.getLogger(__name__)
MAX_K = MAX_SEARCH_DEPTH


class RagStore:
    """Open with `RagStore.open(settings)`; use as a context manager or call `close()`."""

    def __init__(
        self, settings: Settings, db: Database, vectors: VectorIndex, embedder: Embedder, clock: Clock = SYSTEM_CLOCK
    ) -> None:
        self.settings = settings
        self.db = db
        self.clock = clock
        self.components, facades = build(settings, db, vectors, embedder, _restore_beside, clock)
        self.collections = facades.collections
        self.documents = facades.documents
        self.search = facades.search
        self.analytics = facades.analytics
        self.index = facades.index
        self.consistency = facades.consistency
        self.backups = facades.backups
        self.ops = facades.ops
        self.jobs = facades.jobs
        self.usage = facades.usage
        self.secrets = facades.secrets
        self.users = facades.users
        self.keys = facades.keys
        self.audit = facades.audit
        self.chat = facades.chat
        self.records = facades.records  # issue 18: application records
        self.queues = facades.queues  # issue 20: dead letters of the outbox and the job queue, retried
        self.recovery = RecoveryReport()
        self._closed = False

    @classmethod
    def open(
        cls,
        settings: Settings | None = None,
        *,
        embedder: Embedder | None = None,
        start_worker: bool = False,
        progress: Callable[[int, int], None] | None = None,
        clock: Clock = SYSTEM_CLOCK,
        recover: bool = True,
    ) -> RagStore:
        """Open (and recover) a store. `clock` is for tests: every lease, backoff, TTL and queued operation
        of the store reads it, so a test moves time instead of sleeping.

        `recover=False` opens it only to read what SQL holds (listings, reports): the vector index is not
        opened (no index files loaded, no vector library imported) and the lexical analyzer not checked, so
        listing a large store stays fast. Searches and writes through such a store raise Unavailable.
        """
        settings = settings or load_settings()
        db = Database(settings)
        try:
            Migrator(db.engine).ensure_current(auto_upgrade=settings.auto_migrate)
            settings = active_backend(db, settings)
            chosen = embedder or create_embedder(settings, usage_sink=lambda record: record_usage(db, record))
            vectors = create_vector_index(settings) if recover else UnopenedIndex(settings.vector_backend)
            store = cls(settings, db, vectors, chosen, clock)
            if recover:
                store.recovery = store.components.applier.recover(progress=progress)
                store.recovery.relexed_collections = store.index.bring_lexical_current()
                store.recovery.relexed_messages = store.chat.bring_terms_current()
                store.index.apply_tuning()  # each collection's tuned search breadth (indexing/tuning.py)
        except BaseException:
            db.dispose()
            raise
        recovery = store.recovery
        if recovery.rebuilt_collections or recovery.replayed_operations or recovery.applied_pending:
            log.info(
                "recovery: rebuilt %s, replayed %d operations, applied %d pending",
                recovery.rebuilt_collections,
                recovery.replayed_operations,
                recovery.applied_pending,
            )
        if store.components.bus is not None:
            store.components.bus.start()
        if start_worker and recover:
            store.start_worker()
        return store

    @property
    def worker(self) -> SyncWorker | None:
        """This process's sync worker, when `start_worker` started one."""
        return self.components.changes.worker

    def warm_up(self) -> None:
        """Load the embedding models (the collection's and the companion) and the analyzer now, not in the
        first request that needs them."""
        warm_up = getattr(self.components.embedder, "warm_up", None)
        if callable(warm_up):
            warm_up()
        # Korean text: the kiwi analyzer reads other scripts without kiwi, and its model's load and first
        # analysis (about 3 s) had come back into the first Korean search of every server.
        self.components.lexical_indexer.target().terms("warm up 준비")
        if self.components.term_bridge is not None:
            self.components.term_bridge.companion.embed_terms(["warm up", "준비"])

    def prepare_search(self) -> threading.Thread | None:
        """Build each active collection's in-memory lexical index (lexical/memory.py) and term-bridge
        vocabulary (search/term_bridge.py) on a background thread, so the first search after a start does
        not wait for them (the lexical index: about 4 s at 100,000 chunks; the vocabulary: 15-20 s at 20,000).
        A search that comes sooner waits for its collection's build, as it would have. None when there is
        nothing to build (no in-memory lexical index, and the bridge fusion off)."""
        bridge = self.components.term_bridge
        bridging = bridge is not None and self.settings.hybrid_fusion == "bridge"
        lexical = self.components.lexical
        memory = lexical if isinstance(lexical, MemoryLexicalIndex) else None
        if memory is None and not bridging:
            return None

        def build() -> None:
            with self.db.read() as s:
                ids = list(s.scalars(select(Collection.id).where(Collection.status == CollectionStatus.ACTIVE)))
            for collection_id in ids:
                if self.components.stopping.is_set():
                    return
                try:
                    if memory is not None:
                        memory.postings(collection_id, memory.version(collection_id))
                    if bridge is not None and bridging:
                        started = time.perf_counter()
                        terms = bridge.prepare(collection_id, self.components.lexical_indexer.state(collection_id))
                        log.info(
                            "collection %d: term-bridge vocabulary of %d terms ready in %.1f s",
                            collection_id,
                            terms,
                            time.perf_counter() - started,
                        )
                except Exception:  # the first search builds it again; closing the store ends a build this way
                    if self.components.stopping.is_set():
                        return
                    log.exception("collection %d: preparing search failed", collection_id)

        thread = threading.Thread(target=build, name="ragstore-prepare-search", daemon=True)
        thread.start()
        return thread

    def start_worker(self) -> None:
        """Start the in-process sync worker: it retries failed index work and persists the index."""
        c = self.components
        if c.changes.worker is None:
            c.changes.worker = SyncWorker(
                c.applier,
                c.vectors,
                poll_interval_s=self.settings.sync_poll_interval_s,
                persist_interval_s=self.settings.index_persist_interval_s,
            )
            c.changes.worker.start()

    def begin_shutdown(self) -> None:
        """Ask in-flight loads and ingests to stop at their next checkpoint (Unavailable, nothing stored).

        The server calls it on SIGTERM, before uvicorn waits for the requests in flight, so a huge upload
        ends within seconds instead of running to its end; `close()` calls it too. Safe from a signal handler.
        """
        self.components.stopping.set()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        c = self.components
        c.stopping.set()
        if c.changes.worker is not None:
            c.changes.worker.stop()
        if c.bus is not None:
            c.bus.stop()
        c.query_batcher.close()
        if c.term_bridge is not None:
            c.term_bridge.companion.close()
        self.keys.close()
        c.recorder.close()
        c.usage_writer.close()  # the rows of the last requests are written before the database closes
        with c.applier.lock:
            c.vectors.close()
        if c.redis is not None:
            c.redis.close()
        try:
            self.db.flush_slow(self.clock.now())
        except Exception:  # a database that went away must not stop the close; the counts are only lost
            log.warning("the slow statements of this process could not be saved", exc_info=True)
        self.db.dispose()

    def __enter__(self) -> RagStore:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def restore_backup(
    settings: Settings, backup_id: str, *, to: str | None = None, confine: bool = False
) -> RestoreReport:
    """Restore `backup_id` (over the live store, or `to` a new folder or database), then open and check it.

    `confine`: only below the restore root and on the configured PostgreSQL server (the HTTP API's rule).
    """
    try:
        # The restored log is verified with THIS store's audit key: a copy in a new folder has no generated
        # secrets of its own yet, and a key made up for it would prove nothing.
        signer = signer_from_settings(settings)
        check = functools.partial(_open_and_check, signer=signer)
        return backup_restore.restore_backup(settings, backup_id, to=to, check=check, confine=confine)
    except Exception as exc:
        # The live store is as it was before a failed restore: its log records the attempt.
        error = exc.message if isinstance(exc, RagstoreError) else f"{type(exc).__name__}: {exc}"
        record_beside(settings, "backup.restore", target=backup_id, outcome=Outcome.FAILURE, error=error[:500], to=to)
        raise


def _restore_beside(settings: Settings, backup_id: str, to: str) -> RestoreReport:
    """The API's restore beside a running server: confined (`backup.targets`)."""
    return restore_backup(settings, backup_id, to=to, confine=True)


def _open_and_check(
    plan: backup_restore.RestorePlan, manifest: Manifest, *, signer: CheckpointSigner | None = None
) -> RestoredCheck:
    """Open the restored store (recovery levels its index), rebuild vectors a backup does not carry, and
    run the consistency checker, which must find nothing."""
    started = time.perf_counter()
    with RagStore.open(plan.settings) as store:
        rebuilt: dict[str, int] = {}
        if not manifest.index_included and store.components.vectors.shared:
            # An embedded index with no files is rebuilt by recovery at open; a shared store is not.
            rebuilt = store.index.rebuild().vectors
        store.index.persist()
        report = store.consistency.check(repair=False, trigger="restore")
        assert report is not None
        if report.problems and store.components.vectors.shared:
            # A shared store (Milvus, Chroma) answered a query before its rebuilt collection settled (seen once
            # on Milvus Lite under load): repair through the outbox, and report what was found and what remains.
            report = store.consistency.check(repair=True, trigger="restore")
            assert report is not None
        remaining = sum((report.remaining or {}).values())
        with store.db.engine.connect() as c:
            found = count_collections(c, None)
        # Recovery may have indexed chunks the backup caught pending: every other count must be the manifest's.
        ignore = {"vectors": None, "indexed_chunks": 0}
        check_counts(
            [c.model_copy(update=ignore) for c in manifest.collections],
            [c.model_copy(update=ignore) for c in found],
            where=f"restored store of backup {manifest.id}",
        )
        # The restored audit log must still verify against the checkpoint the backup carries.
        audit = verify_log(
            store.db,
            signer or store.components.audit_checkpoints.signer,
            [manifest.audit_checkpoint] if manifest.audit_checkpoint else [],
        )
        if not audit.ok:
            log.error(
                "the audit log restored from backup %s does not verify at sequence %s (%s): %s",
                manifest.id,
                audit.first_bad_sequence,
                audit.problem,
                audit.reason,
            )
        store.components.audit_trail.record(
            "backup.restore",
            target=manifest.id,
            outcome=Outcome.SUCCESS if not remaining else Outcome.FAILURE,
            details={"live": plan.live, "remaining": remaining, "audit_ok": audit.ok},
        )
        store.backups.runs.record(
            "restore",
            kind=manifest.kind,
            backup_id=manifest.id,
            size_bytes=manifest.logical_bytes,
            state=RunState.COMPLETE if not remaining else RunState.FAILED,
            duration_ms=(time.perf_counter() - started) * 1000,
            details={"live": plan.live, "found": report.problems, "remaining": remaining},
        )
    if remaining:
        raise BackupFailed(
            f"backup {manifest.id} was restored, but the consistency check still finds "
            f"{remaining} problems ({report.remaining}); run `ragstore check --repair`"
        )
    return RestoredCheck(
        rebuilt=rebuilt,
        consistency=RestoreConsistency(report_id=report.id, problems=remaining, found=report.problems),
        open_and_check_s=round(time.perf_counter() - started, 3),
        audit=audit,
    )
