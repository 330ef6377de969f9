"""What `store.backups` and `ragstore.service.restore_backup` report: backups, their runs, verifies,
prunes, the status and readiness of the repository, and restores.

The manifest (what a backup holds) is here too, since `backup show` returns it: the backup package reads
and writes it, the faces show it. Each model keeps the keys the dicts it replaced had, so the HTTP bodies
and `--json` outputs are unchanged; where a key was left out (a failed verify has no counts), the model is
a `SparseModel` and leaves it out still.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_serializer

from ragstore.schemas.audit import AuditCheckpointInfo, AuditVerification
from ragstore.schemas.consistency import RunStateName
from ragstore.schemas.core import IsoTime, Model, SparseModel

__all__ = [
    "MANIFEST_FORMAT",
    "BackupDetail",
    "BackupKind",
    "BackupRunInfo",
    "BackupSchedule",
    "BackupStarted",
    "BackupStatus",
    "BackupSummary",
    "CollectionCounts",
    "FileEntry",
    "FreeSpace",
    "Manifest",
    "NewestBackup",
    "PruneReport",
    "ReadinessReport",
    "ReadinessStatus",
    "RestoreConsistency",
    "RestoreEstimate",
    "RestoreReport",
    "RestoredCheck",
    "RetentionPolicy",
    "RunningAction",
    "VerifiedBackup",
    "VerifyResult",
]

BackupKind = Literal["full", "incremental", "snapshot"]
MANIFEST_FORMAT = 1
ReadinessStatus = Literal["ready", "warning", "failing"]


# -- the manifest ------------------------------------------------------------------------------------------
class FileEntry(Model):
    """One file of the store: its map (where each unit lives) and the blocks the map names."""

    path: str  # relative to the restored data directory: "ragstore.db", "index/3.usearch", "database.pgdump"
    role: Literal["database", "index"]
    size: int
    sha256: str  # SHA-256 over the SHA-256 of each unit, in order (`blocks.file_checksum`)
    blocks: list[str]  # every block holding a unit of the file, in order of first use
    map: str  # the repository object holding the unit map (maps/<backup id>/<n>)
    units: int
    new_units: int  # the units this backup stored (the rest were unchanged since the previous backup)


class CollectionCounts(Model):
    name: str
    id: int
    documents: int
    chunks: int
    indexed_chunks: int
    embeddings: int
    vectors: int | None = None  # in the index files carried by the backup; None when they are not carried
    dimension: int
    embedding_model: str


class Manifest(Model):
    """Everything a backup holds and everything needed to check a restore against it (backup/manifest.py)."""

    format: int = MANIFEST_FORMAT
    id: str
    kind: BackupKind
    parent: str | None = None  # the backup an incremental was made against
    note: str | None = None
    created_at: str  # ISO 8601, UTC: the point in time the database snapshot shows
    ragstore_version: str
    alembic_revision: str | None
    dialect: Literal["sqlite", "postgresql"]
    database_format: Literal["sqlite", "pg_dump-custom"]
    pg_schema: str | None = None  # the schema a PostgreSQL store lived in (search_path), when not public
    vector_backend: str
    index_included: bool  # whether this backup names index files (its own or its chain's full backup's)
    index_from: str | None = None  # the backup that copied the index files it names
    index_restore: str  # how the vectors come back
    store_identity: int
    collections: list[CollectionCounts] = Field(default_factory=list)
    embedding_models: list[str] = Field(default_factory=list)
    files: list[FileEntry] = Field(default_factory=list)
    block_size: int
    codec: str
    encrypted: bool
    new_blocks: list[str] = Field(default_factory=list)  # the blocks this backup wrote (others it reused)
    logical_bytes: int = 0  # the size of the files it holds
    stored_bytes: int = 0  # what it added to the repository
    timings: dict[str, float] = Field(default_factory=dict)
    # The audit log's signed checkpoint written just before the snapshot: a restored log must still verify
    # against it (rows it covers present, its head hash theirs, signed by the configured key).
    audit_checkpoint: AuditCheckpointInfo | None = None

    def referenced_blocks(self) -> set[str]:
        return {b for f in self.files for b in f.blocks}

    def referenced_maps(self) -> set[str]:
        return {f.map for f in self.files}


# -- verify --------------------------------------------------------------------------------------------------
class VerifyResult(SparseModel):
    """A verify's record (kept in the repository, `verified/<id>`), or the checks of a restore.

    A failed verify has only `ok`, `verified_at` and `error`; a SQLite backup's checks name
    `integrity_check`, a PostgreSQL one's `pg_restore_list`; a restore's checks have no `ok` or times.
    """

    ok: bool | None = None
    backup_id: str | None = None
    verified_at: str | None = None  # ISO 8601, UTC
    error: str | None = None
    integrity_check: str | None = None  # SQLite: PRAGMA integrity_check's answer
    pg_restore_list: int | None = None  # PostgreSQL: the entries `pg_restore --list` read
    counts: str | None = None  # "match", or why they were not compared
    files: int | None = None
    blocks: int | None = None
    bytes: int | None = None
    read_s: float | None = None
    total_s: float | None = None
    audit: str | None = None  # the copied audit log verified against the checkpoint the backup carries


# -- backups and runs ----------------------------------------------------------------------------------------
class BackupSummary(Model):
    """What `backup list` shows of one backup; `create` returns the one it made."""

    id: str
    kind: BackupKind
    created_at: str  # ISO 8601, UTC
    parent: str | None
    note: str | None
    dialect: str
    vector_backend: str
    index_included: bool
    collections: int
    documents: int
    chunks: int
    logical_bytes: int
    stored_bytes: int
    encrypted: bool
    seconds: float | None  # how long making it took
    verified_at: str | None  # of the last verify, when it passed
    verify: VerifyResult | None  # the last verify's record, passed or failed

    @classmethod
    def of(cls, m: Manifest, verified: VerifyResult | None = None) -> BackupSummary:
        """The summary of a manifest, with the record of its last verify (None: never verified)."""
        return cls(
            id=m.id,
            kind=m.kind,
            created_at=m.created_at,
            parent=m.parent,
            note=m.note,
            dialect=m.dialect,
            vector_backend=m.vector_backend,
            index_included=m.index_included,
            collections=len(m.collections),
            documents=sum(c.documents for c in m.collections),
            chunks=sum(c.chunks for c in m.collections),
            logical_bytes=m.logical_bytes,
            stored_bytes=m.stored_bytes,
            encrypted=m.encrypted,
            seconds=m.timings.get("total_s"),
            verified_at=verified.verified_at if verified is not None and verified.ok else None,
            verify=verified,
        )


class BackupDetail(Manifest):
    """`backup show`: the manifest, the last verify and how many of its blocks the repository lacks.

    Its JSON gives counts where the manifest lists block digests (thousands of them); Python callers have
    the lists.
    """

    verify: VerifyResult | None
    missing_blocks: int

    @field_serializer("files")
    def _files_with_block_counts(self, files: list[FileEntry]) -> list[dict[str, Any]]:
        return [{**f.model_dump(), "blocks": len(f.blocks)} for f in files]

    @field_serializer("new_blocks")
    def _new_block_count(self, new_blocks: list[str]) -> int:
        return len(new_blocks)


class BackupRunInfo(Model):
    """One entry of `backup_runs`: a backup, verify, prune or restore, including those that failed."""

    id: int
    action: str  # backup, verify, prune, restore
    kind: str | None
    backup_id: str | None
    trigger: str
    state: RunStateName
    started_at: IsoTime | None
    finished_at: IsoTime | None
    duration_ms: float | None
    size_bytes: int | None
    note: str | None
    error: str | None
    details: dict[str, Any] | None


class RunningAction(Model):
    """What this process is running now."""

    run_id: int
    action: str
    kind: str | None
    started_at: str  # ISO 8601, UTC


class BackupStarted(Model):
    """The answer to a backup started in the background (HTTP 202)."""

    accepted: bool
    kind: BackupKind
    running: RunningAction | None


class PruneReport(Model):
    dry_run: bool
    kept: dict[str, list[str]]  # backup id -> the retention rules that keep it
    removed_backups: list[str]
    removed_blocks: int
    removed_maps: int
    freed_bytes: int


class BackupSchedule(Model):
    full: str | None  # a cron line, or None when not scheduled
    incremental: str | None
    verify_scheduled: bool


class RetentionPolicy(Model):
    hourly: int
    daily: int
    weekly: int
    monthly: int


class BackupStatus(Model):
    repository: str
    running_here: RunningAction | None
    running: list[BackupRunInfo]  # in any process
    latest: BackupSummary | None
    last_runs: list[BackupRunInfo]
    schedule: BackupSchedule
    retention: RetentionPolicy


# -- readiness -----------------------------------------------------------------------------------------------
class NewestBackup(Model):
    id: str
    age_hours: float
    chain_complete: bool
    missing_blocks: int


class VerifiedBackup(Model):
    id: str
    backup_age_hours: float
    verified_hours_ago: float
    chain_complete: bool


class FreeSpace(Model):
    data_dir: int
    repository: int
    restore_needs: int  # the newest backup's logical size


class RestoreEstimate(Model):
    seconds: float
    basis: str  # the run it was timed from, or the default rate
    bytes_per_s: int


class ReadinessReport(Model):
    """`ragstore dr report`: could this store be restored now, from what, and how long would it take."""

    repository: str
    key_present: bool
    encrypted: bool
    backups: int
    newest: NewestBackup | None
    newest_verified: VerifiedBackup | None
    free_bytes: FreeSpace | None  # None over HTTP: free space is the server's business
    estimated_restore_s: RestoreEstimate
    problems: list[str]
    warnings: list[str]
    status: ReadinessStatus


# -- restore -------------------------------------------------------------------------------------------------
class RestoreConsistency(Model):
    report_id: int  # the consistency report of the check that proved the restored store
    problems: int  # remaining (0, or the restore failed)
    found: int | None  # before any repair


class RestoredCheck(Model):
    """What opening and checking the restored store did."""

    rebuilt: dict[str, int]  # collection -> vectors rebuilt into a shared vector store
    consistency: RestoreConsistency
    open_and_check_s: float
    audit: AuditVerification | None = None  # the restored audit log against the backup's checkpoint


class RestoreReport(Model):
    backup_id: str
    kind: BackupKind
    live: bool  # over the live store, or beside it
    target: str  # the folder (SQLite) or database URL restored into
    data_dir: str
    vector_backend: str
    verify: VerifyResult
    restore_s: float
    index: str  # "files" or "rebuilt from the embeddings table"
    rebuilt: dict[str, int]
    consistency: RestoreConsistency
    open_and_check_s: float
    total_s: float
    audit: AuditVerification | None = None  # the restored audit log against the backup's checkpoint
