"""Backups of a live store: create, list, show, verify, prune, status and the disaster-recovery report.

Every action takes the repository's lock (two backups never run at once; prune never deletes a block a
running backup is about to name) and is logged in `backup_runs`. Restores are in `restore.py`: they run
with the store closed.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ragstore.backup.errors import BackupFailed, NoSpace
from ragstore.backup.keys import parse_key
from ragstore.backup.manifest import BackupKind, Manifest
from ragstore.backup.pipeline import SnapshotWriter
from ragstore.backup.repository import Repository
from ragstore.backup.retention import Retention, select_kept
from ragstore.backup.runs import RunLog
from ragstore.backup.snapshot import IndexExport, Snapshot, estimate_bytes, search_path_schema, take_snapshot
from ragstore.backup.storage import open_storage
from ragstore.backup.verify import verify_into
from ragstore.config import Settings
from ragstore.db.engine import Database
from ragstore.db.runs import RunState
from ragstore.errors import Conflict, InvalidInput, NotFound, RagstoreError
from ragstore.schemas import (
    BackupDetail,
    BackupRunInfo,
    BackupSchedule,
    BackupStarted,
    BackupStatus,
    BackupSummary,
    PruneReport,
    RetentionPolicy,
    RunningAction,
    VerifyResult,
)
from ragstore.security.audit import AuditTrail
from ragstore.security.checkpoints import Checkpoints
from ragstore.vectors.registry import backend_spec

__all__ = ["KINDS", "BackupManager", "open_repository"]

log = logging.getLogger(__name__)
KINDS: tuple[str, ...] = ("full", "incremental", "snapshot")
AUDIT_ACTIONS = {"backup": "backup.create", "verify": "backup.verify", "prune": "backup.prune"}
MIN_REPOSITORY_FREE = 1024 * 1024


def open_repository(settings: Settings, *, create: bool) -> Repository:
    key_text = settings.backup_encryption_key.get_secret_value() if settings.backup_encryption_key else None
    return Repository.open(
        open_storage(settings.backup_location),
        codec=settings.backup_compression,
        level=settings.backup_compression_level,
        key=parse_key(key_text),
        create=create,
    )


def ragstore_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ragstore")
    except PackageNotFoundError:
        return "0.0.0"


def new_backup_id(kind: str, now: datetime) -> str:
    """Sortable by time (to the microsecond), so the repository lists backups in the order they were made."""
    return f"{now.strftime('%Y%m%dT%H%M%S%fZ')}-{kind}-{secrets.token_hex(3)}"


class BackupManager:
    def __init__(
        self,
        settings: Settings,
        db: Database,
        *,
        vector_backend: Callable[[], str],
        persist_index: Callable[[], None],
        collection_ids: Callable[[], list[int]],
        audit: AuditTrail,  # records each create, verify and prune, and how it ended
        checkpoints: Checkpoints,  # signs the audit chain's head that each manifest carries
    ) -> None:
        self.settings = settings
        self.audit = audit
        self.checkpoints = checkpoints
        self.db = db
        self.runs = RunLog(db)
        self._backend = vector_backend
        self._persist_index = persist_index
        self._collection_ids = collection_ids
        self._active: dict[str, Any] | None = None
        self._active_lock = threading.Lock()

    # -- helpers -----------------------------------------------------------------------------------------
    def repository(self, *, create: bool = False) -> Repository:
        return open_repository(self.settings, create=create)

    @contextlib.contextmanager
    def _run(
        self, action: str, *, kind: str | None = None, trigger: str, slot: str | None = None, note: str | None = None
    ) -> Iterator[dict[str, Any] | None]:
        """Log one action in backup_runs: `state` of the yielded dict says how it ended (None: slot taken)."""
        run_id = self.runs.start(action, kind=kind, trigger=trigger, slot=slot, note=note)
        if run_id is None:
            yield None
            return
        outcome: dict[str, Any] = {"run_id": run_id, "details": {}, "size_bytes": None, "backup_id": None}
        started = time.perf_counter()
        with self._active_lock:
            self._active = {"run_id": run_id, "action": action, "kind": kind, "started_at": _now().isoformat()}

        def finish(state: RunState, **fields: Any) -> None:
            self.runs.finish(
                run_id,
                state=state,
                duration_ms=(time.perf_counter() - started) * 1000,
                backup_id=outcome["backup_id"],
                details=outcome["details"],
                **fields,
            )

        try:
            yield outcome
        except BaseException as exc:
            error = exc.message if isinstance(exc, RagstoreError) else f"{type(exc).__name__}: {exc}"
            with contextlib.suppress(Exception):
                finish(RunState.FAILED, error=error)
            self.audit.record_failure(AUDIT_ACTIONS[action], target=outcome["backup_id"] or "", error=error)
            raise
        else:
            finish(RunState.COMPLETE, size_bytes=outcome["size_bytes"])
            details = {"kind": kind, "trigger": trigger, "run_id": run_id}
            self.audit.record_quietly(AUDIT_ACTIONS[action], target=outcome["backup_id"] or "", details=details)
        finally:
            # Released last: whoever sees nothing running here finds the run's end in the history already.
            with self._active_lock:
                self._active = None

    def _sqlite_path(self) -> Path | None:
        if not self.db.is_sqlite:
            return None
        database = self.db.engine.url.database
        return Path(database) if database else None

    # -- create ------------------------------------------------------------------------------------------
    def create(
        self,
        kind: str = "incremental",
        *,
        note: str | None = None,
        trigger: str = "cli",
        slot: str | None = None,
        on_started: Callable[[], None] | None = None,
    ) -> BackupSummary | None:
        """Make one backup; returns its summary (None when another process took this scheduled slot)."""
        if kind not in KINDS:
            raise InvalidInput(f"--kind must be one of {', '.join(KINDS)} (got {kind!r})")
        if note is not None and len(note) > 1000:
            raise InvalidInput("--note must be at most 1,000 characters")
        if self._sqlite_path() is None and not self.db.is_sqlite and shutil.which("pg_dump") is None:
            raise BackupFailed("pg_dump is not on PATH: install the PostgreSQL client (Debian: postgresql-client)")
        repo = self.repository(create=True)
        with repo.storage.lock(), self._run("backup", kind=kind, trigger=trigger, slot=slot, note=note) as outcome:
            if outcome is None:
                return None
            if on_started is not None:
                on_started()
            self.runs.mark_interrupted(keep=outcome["run_id"])
            repo.storage.clear_temporary()
            manifest = self._make(repo, kind, note, outcome)  # type: ignore[arg-type]
            outcome["backup_id"] = manifest.id
            outcome["size_bytes"] = manifest.stored_bytes
            outcome["details"] = {
                "logical_bytes": manifest.logical_bytes,
                "new_blocks": len(manifest.new_blocks),
                "timings": manifest.timings,
            }
        log.info(
            "backup %s: %d bytes, %d stored, %.1f s",
            manifest.id,
            manifest.logical_bytes,
            manifest.stored_bytes,
            manifest.timings["total_s"],
        )
        return BackupSummary.of(manifest)

    def start_in_background(self, kind: str, *, note: str | None = None, trigger: str = "api") -> BackupStarted:
        """Start a backup in a thread of this process (for the API); Conflict when one is running."""
        if kind not in KINDS:
            raise InvalidInput(f"kind must be one of {', '.join(KINDS)} (got {kind!r})")
        if note is not None and len(note) > 1000:
            raise InvalidInput("note must be at most 1,000 characters")
        repo = self.repository(create=True)
        with self._active_lock:
            if self._active is not None:
                raise Conflict(f"a {self._active['action']} is running (run {self._active['run_id']})")
        with repo.storage.lock():
            pass  # held by another process: Conflict now, not a failed run later
        started = threading.Event()

        def run() -> None:
            try:
                self.create(kind, note=note, trigger=trigger, on_started=started.set)
            except Exception:
                log.exception("the %s backup started by the API failed", kind)
            finally:
                started.set()

        threading.Thread(target=run, name="ragstore-backup", daemon=True).start()
        started.wait(10)
        return BackupStarted(accepted=True, kind=kind, running=self._running_here())

    def _make(self, repo: Repository, kind: BackupKind, note: str | None, outcome: dict[str, Any]) -> Manifest:
        started = time.perf_counter()
        now = datetime.now(UTC)
        backup_id = new_backup_id(kind, now)
        outcome["backup_id"] = backup_id
        self.runs.attach(outcome["run_id"], backup_id)
        backend = self._backend()
        parent = repo.latest() if kind == "incremental" else None
        # The index files change far more than the database per document changed (a new vector rewrites the
        # neighbour lists of dozens of others): a full backup copies them, and an incremental names its
        # chain's full backup's copy, which recovery brings level at restore (outbox replay or rebuild).
        spec = backend_spec(backend)  # only a backend that keeps files has an index a backup can carry
        base_full = self._newest_full(repo) if kind == "incremental" and spec.keeps_files else None
        own_index = spec.keeps_files and (kind == "full" or (kind == "incremental" and base_full is None))
        index = IndexExport(spec.file_keeper(), self.settings.index_dir) if own_index else None
        sqlite_path = self._sqlite_path()
        staging = self.settings.backup_staging / backup_id
        self._check_space(repo, staging, sqlite_path, index)
        if own_index:
            self._persist_index()
        checkpoint = self.checkpoints.write()  # before the snapshot, which then holds every row it covers
        try:
            # Files are stored while the rest of the snapshot is taken: see SnapshotWriter.
            writer = SnapshotWriter(
                repo,
                backup_id=backup_id,
                parent=parent,
                unit_size=self.settings.backup_block_kb * 1024,
                threads=self.settings.backup_threads,
            )
            snap: Snapshot | None = None
            try:
                snap = take_snapshot(
                    self.db.engine,
                    sqlite_path=sqlite_path,
                    index=index,
                    collection_ids=self._collection_ids(),
                    staging=staging,
                    staged=writer.start,
                )
                store_started = time.perf_counter()
                files = writer.store(snap.files)
            finally:
                writer.close()  # nothing reads the live database after this...
                if snap is not None:
                    snap.release()  # ...so its writers' checkpoints may go on
            collections = snap.collections
            index_from: str | None = backup_id if own_index else None
            if base_full is not None:
                files += [f for f in base_full.files if f.role == "index"]
                index_from = base_full.id
                vectors = {c.id: c.vectors or 0 for c in base_full.collections}
                collections = [c.model_copy(update={"vectors": vectors.get(c.id, 0)}) for c in collections]
            timings = dict(snap.timings)
            timings["store_s"] = round(time.perf_counter() - store_started, 3)
            if index_from == backup_id:
                index_restore = "from this backup's index files"
            elif index_from is not None:
                index_restore = (
                    f"from the index files of backup {index_from}, brought level by the outbox or rebuilt from "
                    "the embeddings table"
                )
            else:
                index_restore = "rebuild from the embeddings table"
            manifest = Manifest(
                id=backup_id,
                kind=kind,
                parent=parent.id if parent else None,
                note=note,
                created_at=now.isoformat(),
                ragstore_version=ragstore_version(),
                alembic_revision=snap.revision,
                dialect="sqlite" if sqlite_path is not None else "postgresql",
                database_format="sqlite" if sqlite_path is not None else "pg_dump-custom",
                pg_schema=None if sqlite_path is not None else search_path_schema(self.settings.sqlalchemy_url),
                vector_backend=backend,
                index_included=index_from is not None,
                index_from=index_from,
                index_restore=index_restore,
                store_identity=snap.store_identity,
                collections=collections,
                audit_checkpoint=checkpoint,
                embedding_models=sorted({c.embedding_model for c in collections}),
                files=files,
                block_size=self.settings.backup_block_kb * 1024,
                codec=self.settings.backup_compression,
                encrypted=repo.encrypted,
                new_blocks=writer.stats.new_blocks,
                logical_bytes=sum(f.size for f in files),
                stored_bytes=writer.stats.stored_bytes,
                timings=timings,
            )
            # Removed before the blocks are flushed, so the flush does not write the staged copy to disk too.
            shutil.rmtree(staging, ignore_errors=True)
            manifest.timings["total_s"] = round(time.perf_counter() - started, 3)
            repo.save_manifest(manifest)  # the commit point: from here on the backup exists
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return manifest

    @staticmethod
    def _newest_full(repo: Repository) -> Manifest | None:
        fulls = [m for m in repo.manifests() if m.kind == "full" and m.index_from == m.id]
        return fulls[-1] if fulls else None

    def _check_space(self, repo: Repository, staging: Path, sqlite: Path | None, index: IndexExport | None) -> None:
        needed = estimate_bytes(sqlite, index)
        staging.parent.mkdir(parents=True, exist_ok=True)
        free = shutil.disk_usage(staging.parent).free
        if needed and free < needed * 1.1:
            raise NoSpace(
                f"the staging folder {staging.parent} has {_mib(free)} free, the snapshot needs about {_mib(needed)}"
            )
        # What the repository needs is unknown until blocks are compressed and deduplicated (an incremental may
        # add almost nothing): refuse only an obviously full one here; a disk that fills later fails cleanly.
        repo_free = repo.storage.free_bytes()
        if repo_free is not None and repo_free < MIN_REPOSITORY_FREE:
            raise NoSpace(f"the backup repository {repo.location} has only {_mib(repo_free)} free")

    # -- read ----------------------------------------------------------------------------------------------
    def summaries(self) -> list[BackupSummary]:
        repo = self._existing()
        if repo is None:
            return []
        return [BackupSummary.of(m, _verified(repo, m.id)) for m in repo.manifests()]

    def show(self, backup_id: str) -> BackupDetail:
        repo = self.repository(create=False)
        m = repo.manifest(backup_id)
        extra = {"verify": _verified(repo, backup_id), "missing_blocks": len(repo.missing_blocks(m))}
        return BackupDetail(**dict(m), **extra)

    def _running_here(self) -> RunningAction | None:
        with self._active_lock:
            return RunningAction(**self._active) if self._active else None

    def _existing(self) -> Repository | None:
        """The repository, or None before the first backup made it."""
        try:
            return self.repository(create=False)
        except NotFound:
            return None

    # -- verify --------------------------------------------------------------------------------------------
    def verify(self, backup_id: str | None = None, *, every: bool = False, trigger: str = "cli") -> list[VerifyResult]:
        """Restore into a temporary folder and check everything; raises on the first damaged backup."""
        repo = self.repository(create=False)
        ids = repo.backup_ids() if every else [backup_id or (repo.backup_ids() or [""])[-1]]
        if ids == [""]:
            raise NotFound(f"no backup in {repo.location} yet")
        results = []
        with repo.storage.lock():
            for one in ids:
                manifest = repo.manifest(one)
                with self._run("verify", kind=manifest.kind, trigger=trigger) as outcome:
                    assert outcome is not None
                    outcome["backup_id"] = one
                    record = self._verify_one(repo, manifest)
                    outcome["details"] = record
                    outcome["size_bytes"] = manifest.logical_bytes
                results.append(VerifyResult.model_validate(record))
        return results

    def _verify_one(self, repo: Repository, manifest: Manifest) -> dict[str, Any]:
        self.settings.backup_staging.mkdir(parents=True, exist_ok=True)
        started = _now()
        live_url = None if self.db.is_sqlite else self.db.engine.url.render_as_string(hide_password=False)
        with tempfile.TemporaryDirectory(prefix="verify-", dir=self.settings.backup_staging) as folder:
            threads = self.settings.backup_threads  # `audit`: the copied audit log verified with the store's key
            try:
                checks = verify_into(
                    repo, manifest, Path(folder), live_url=live_url, threads=threads, audit=self.settings
                )
            except RagstoreError as exc:
                repo.record_verified(
                    manifest.id, {"ok": False, "verified_at": started.isoformat(), "error": exc.message}
                )
                raise
        record = {"ok": True, "backup_id": manifest.id, "verified_at": started.isoformat(), **checks}
        repo.record_verified(manifest.id, record)
        return record

    # -- prune ---------------------------------------------------------------------------------------------
    def retention(self) -> Retention:
        s = self.settings
        return Retention(
            hourly=s.backup_keep_hourly,
            daily=s.backup_keep_daily,
            weekly=s.backup_keep_weekly,
            monthly=s.backup_keep_monthly,
        )

    def prune(self, *, dry_run: bool = False, trigger: str = "cli") -> PruneReport:
        """Forget backups the retention policy does not keep, then delete blocks no manifest names."""
        repo = self.repository(create=False)
        with repo.storage.lock(), self._run("prune", trigger=trigger) as outcome:
            assert outcome is not None
            manifests = repo.manifests()
            kept = select_kept([(m.id, datetime.fromisoformat(m.created_at)) for m in manifests], self.retention())
            removed = [m.id for m in manifests if m.id not in kept]
            referenced: set[str] = set()
            maps: set[str] = set()
            for m in manifests:
                if m.id in kept:
                    referenced |= m.referenced_blocks()
                    maps |= m.referenced_maps()
            unreferenced = [d for d in repo.all_blocks() if d not in referenced]
            stale_maps = [name for name in repo.all_maps() if name not in maps]
            freed = 0
            if not dry_run:
                for backup_id in removed:
                    repo.delete_backup(backup_id)
                for digest in unreferenced:
                    freed += repo.delete_block(digest)
                for name in stale_maps:
                    freed += repo.delete_object(name)
                repo.storage.clear_temporary()
            result = PruneReport(
                dry_run=dry_run,
                kept=dict(sorted(kept.items())),
                removed_backups=removed,
                removed_blocks=len(unreferenced),
                removed_maps=len(stale_maps),
                freed_bytes=freed,
            )
            outcome["details"] = result.model_dump(mode="json")
            outcome["size_bytes"] = freed
        return result

    # -- status --------------------------------------------------------------------------------------------
    def status(self) -> BackupStatus:
        active = self._running_here()
        latest = None
        repo = self._existing()
        if repo is not None:
            newest = repo.latest()
            latest = BackupSummary.of(newest, _verified(repo, newest.id)) if newest else None
        s = self.settings
        return BackupStatus(
            repository=s.backup_location,
            running_here=active,
            running=self.runs.running(),
            latest=latest,
            last_runs=self.runs.history(5),
            schedule=BackupSchedule(
                full=s.backup_schedule_full or None,
                incremental=s.backup_schedule_incremental or None,
                verify_scheduled=s.backup_verify_scheduled,
            ),
            retention=RetentionPolicy.model_validate(self.retention()),
        )

    def history(self, limit: int = 50) -> list[BackupRunInfo]:
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 1000:
            raise InvalidInput(f"limit must be an integer from 1 to 1000, got {limit!r}")
        return self.runs.history(limit)


def _verified(repo: Repository, backup_id: str) -> VerifyResult | None:
    """The record of a backup's last verify, passed or failed; None when it was never verified."""
    record = repo.verified(backup_id)
    return VerifyResult.model_validate(record) if record is not None else None


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _mib(n: int) -> str:
    return f"{n / 1024 / 1024:,.1f} MiB"
