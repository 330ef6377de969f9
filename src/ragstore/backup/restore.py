"""Restore a backup: beside the live store, verified, then swapped in (or written to a new place).

The live store is never written in place. The backup is reassembled into a folder beside it (or a new
PostgreSQL database), verified exactly as `backup verify` does, given a new store identity (so no cache
entry of the old database is ever served for the restored one), and only then put in place: on SQLite by
an atomic rename over the database file, after the old files are moved to `pre-restore-<time>/`; on
PostgreSQL by renaming the databases. A failure at any step before the swap leaves the live store as it
was; the folder beside it is removed.
"""

from __future__ import annotations

import contextlib
import os
import re
import sqlite3
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.pool import NullPool

from ragstore.backup.manager import open_repository
from ragstore.backup.manifest import Manifest
from ragstore.backup.snapshot import search_path_schema
from ragstore.backup.targets import RestoreTarget, check_backup_id, prepare_target, remove_tree
from ragstore.backup.verify import (
    check_database_counts,
    create_database,
    drop_database,
    rename_database,
    restore_pg_dump,
    verify_into,
)
from ragstore.config import Settings
from ragstore.db.identity import renew_identity
from ragstore.db.models import BackupRun
from ragstore.db.runs import complete_running, interrupt_running
from ragstore.db.state import VECTOR_BACKEND_KEY, clear_state
from ragstore.errors import Conflict, InvalidInput
from ragstore.schemas import RestoredCheck, RestoreReport, VerifyResult
from ragstore.vectors.base import KeepsFiles
from ragstore.vectors.registry import backend_spec, self_contained_backend

__all__ = ["CheckRestored", "RestorePlan", "restore_backup"]

ABANDONED = "running when the backup was taken"


@dataclass
class RestorePlan:
    """Where a restore goes: the settings of the store it produces, and whether that is the live one."""

    settings: Settings
    live: bool


CheckRestored = Callable[[RestorePlan, Manifest], RestoredCheck]


def restore_backup(
    settings: Settings, backup_id: str, *, check: CheckRestored, to: str | None = None, confine: bool = False
) -> RestoreReport:
    """Restore `backup_id`; with `to`, into a new data directory (SQLite) or database URL (PostgreSQL).

    `check` opens the restored store and proves it consistent; it needs the whole facade, which sits above
    this package, so the service layer hands it in (`ragstore.service.restore_backup`). `confine` (the HTTP
    API) keeps a folder below the restore root and a database on the configured PostgreSQL server; the CLI
    (the operator) may name any new folder or server.
    """
    check_backup_id(backup_id)
    repo = open_repository(settings, create=False)
    manifest = repo.manifest(backup_id)
    _check_revision_known(manifest)
    started = time.perf_counter()
    target: RestoreTarget | None = None
    if manifest.dialect == "sqlite" and to is not None:
        target = _sqlite_target(settings, to, confine=confine)
    try:
        with repo.storage.lock():
            if manifest.dialect == "sqlite":
                plan, checks = _restore_sqlite(settings, repo, manifest, target)
            else:
                plan, checks = _restore_postgres(settings, repo, manifest, to, confine=confine)
        restored_s = time.perf_counter() - started
        after = check(plan, manifest)
    except BaseException:
        if target is not None:
            target.discard()
        raise
    if target is not None:
        target.seal()
    return RestoreReport(
        backup_id=backup_id,
        kind=manifest.kind,
        live=plan.live,
        target=make_url(plan.settings.sqlalchemy_url).render_as_string(hide_password=True)
        if not plan.settings.is_sqlite
        else str(plan.settings.data_dir),
        data_dir=str(plan.settings.data_dir),
        vector_backend=plan.settings.vector_backend,
        verify=VerifyResult.model_validate(checks),
        restore_s=round(restored_s, 3),
        index="files" if manifest.index_included else "rebuilt from the embeddings table",
        rebuilt=after.rebuilt,
        consistency=after.consistency,
        open_and_check_s=after.open_and_check_s,
        audit=after.audit,
        total_s=round(time.perf_counter() - started, 3),
    )


def _check_revision_known(manifest: Manifest) -> None:
    """A backup from a newer ragstore holds a schema this one cannot open: refuse before touching anything."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from ragstore.migrations import MIGRATIONS_DIR

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    scripts = ScriptDirectory.from_config(config)
    revision = manifest.alembic_revision
    if revision is not None and revision not in {s.revision for s in scripts.walk_revisions()}:
        raise InvalidInput(
            f"backup {manifest.id} was made by ragstore {manifest.ragstore_version} at schema revision "
            f"{revision}, which this ragstore does not know: upgrade ragstore, then restore"
        )


# -- SQLite ------------------------------------------------------------------------------------------------
def _sqlite_target(settings: Settings, to: str, *, confine: bool) -> RestoreTarget:
    """The checked, created target folder (`backup.targets`): never the live store, its index, the repository
    or the staging area; through the API, only below the restore root."""
    forbidden = [settings.index_dir.resolve(), settings.backup_staging.resolve()]
    if "://" not in settings.backup_location or settings.backup_location.startswith("file://"):
        forbidden.append(Path(settings.backup_location.removeprefix("file://")).expanduser().resolve())
    if "://" in to:
        raise InvalidInput("to: the backup is of a SQLite store, so to must be a folder, not a URL")
    root_label = "<RAGSTORE_RESTORE_ROOT>" if settings.restore_root is not None else "<data dir>/restores"
    return prepare_target(
        to,
        root=settings.restore_root_dir if confine else None,
        live=settings.data_dir.resolve(),
        forbidden=forbidden,
        root_label=root_label,
    )


def _restore_sqlite(
    settings: Settings, repo: Any, manifest: Manifest, target: RestoreTarget | None
) -> tuple[RestorePlan, dict[str, Any]]:
    if target is not None:
        plan = RestorePlan(_settings_for_dir(settings, target.path, manifest), live=False)
    else:
        if not settings.is_sqlite:
            raise InvalidInput(
                f"backup {manifest.id} is of a SQLite store and this store is on PostgreSQL: restore it with "
                "--to FOLDER"
            )
        plan = RestorePlan(settings, live=True)
    live_db = Path(make_url(plan.settings.sqlalchemy_url).database or "")
    data_dir = live_db.parent
    data_dir.mkdir(parents=True, exist_ok=True)
    beside = data_dir / f".restore-{manifest.id}"
    remove_tree(beside)  # a crashed restore's leftovers (a symlink planted there is removed, not followed)
    try:
        checks = verify_into(repo, manifest, beside, live_url=None, threads=settings.backup_threads)
        _prepare_sqlite(beside / "ragstore.db", manifest, drop_backend=not plan.live and _switches_backend(manifest))
        if plan.live:
            _refuse_if_open(live_db)
            _swap_sqlite(beside, live_db, settings.index_dir.resolve(), manifest)
        else:
            if (beside / "index").is_dir():
                _index_files(manifest).place_files(beside / "index", plan.settings.index_dir.resolve(), aside=None)
            os.replace(beside / "ragstore.db", live_db)
    finally:
        remove_tree(beside)
    return plan, checks


def _settings_for_dir(settings: Settings, target_dir: Path, manifest: Manifest) -> Settings:
    """A self-contained store in `target_dir`: its own database file and (for shared backends) an embedded
    index, so that opening the copy never touches the live Milvus or Chroma collections."""
    update: dict[str, Any] = {"data_dir": target_dir, "database_url": None, "chroma_path": None}
    if _switches_backend(manifest):
        update["vector_backend"] = self_contained_backend().name
    return settings.model_copy(update=update)


def _switches_backend(manifest: Manifest) -> bool:
    """A copy restored elsewhere leaves a backend that keeps no files (a shared store: its collections are the
    live store's) for the self-contained one."""
    return not backend_spec(manifest.vector_backend).keeps_files


def _index_files(manifest: Manifest) -> type[KeepsFiles]:
    """The backend that places the restored index folder: the backup's own when it keeps files, else the one
    whose directory (`Settings.index_dir`) a store restored from it opens."""
    spec = backend_spec(manifest.vector_backend)
    return (spec if spec.keeps_files else self_contained_backend()).file_keeper()


def _prepare(conn: Connection, manifest: Manifest, *, drop_backend: bool) -> None:
    """Make the copy a store of its own before it goes live, through the owners of what changes: a new
    identity (db/identity.py); in its run ledger, the run that made this backup complete and any other
    then in progress interrupted (db/runs.py); and, for a copy beside a shared vector backend, no recorded
    backend (db/state.py), so the copy opens on an embedded index of its own."""
    renew_identity(conn)
    complete_running(conn, BackupRun, BackupRun.backup_id == manifest.id)
    interrupt_running(conn, BackupRun, error=ABANDONED)
    if drop_backend:
        clear_state(conn, VECTOR_BACKEND_KEY)


def _prepare_sqlite(path: Path, manifest: Manifest, *, drop_backend: bool) -> None:
    engine = create_engine(f"sqlite:///{path}", poolclass=NullPool)
    try:
        with engine.begin() as conn:
            _prepare(conn, manifest, drop_backend=drop_backend)
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        engine.dispose()


def _refuse_if_open(live_db: Path) -> None:
    """Refuse while another process has the live database open: it would go on writing to the old file."""
    names = {str(live_db), f"{live_db}-wal", f"{live_db}-shm"}
    me = os.getpid()
    for pid_dir in Path("/proc").glob("[0-9]*"):
        if int(pid_dir.name) == me:
            continue
        with contextlib.suppress(OSError):
            for fd in (pid_dir / "fd").iterdir():
                with contextlib.suppress(OSError):
                    if os.readlink(fd) in names:
                        raise Conflict(
                            f"process {pid_dir.name} has {live_db} open: stop the server and workers, then restore "
                            "(or restore with --to FOLDER beside them)"
                        )


def _swap_sqlite(beside: Path, live_db: Path, index_dir: Path, manifest: Manifest) -> None:
    aside = live_db.parent / f"pre-restore-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}"
    aside.mkdir()
    if live_db.exists():
        conn = sqlite3.connect(str(live_db))
        try:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            conn.close()
        os.link(live_db, aside / live_db.name)  # the old database stays reachable until the swap is done
        for suffix in ("-wal", "-shm"):
            side = Path(f"{live_db}{suffix}")
            if side.exists():
                os.replace(side, aside / side.name)
    _index_files(manifest).place_files(beside / "index", index_dir, aside=aside / "index")
    os.replace(beside / "ragstore.db", live_db)  # the commit point of the restore


# -- PostgreSQL --------------------------------------------------------------------------------------------
# A database name as ragstore will quote it (psycopg `sql.Identifier`): no NUL, control character or path
# separator (the copy's index folder is named after it), and room for the `_restore_<hex>` staging suffix
# within PostgreSQL's 63-byte identifiers.
DATABASE_NAME = re.compile(r"[^\x00-\x1f\x7f/\\]{1,46}")


def _target_url(settings: Settings, manifest: Manifest, to: str, *, confine: bool) -> URL:
    """The `to` URL, checked: a PostgreSQL URL naming a database; through the API, on the configured server
    (same host, port and user; the configured password is used when `to` gives none). Never echoed whole."""
    if not to.startswith("postgresql"):
        raise InvalidInput(f"backup {manifest.id} is of a PostgreSQL store: to must be a postgresql:// URL")
    try:
        url = make_url(to)
    except (ArgumentError, ValueError):
        raise InvalidInput("to is not a valid postgresql:// URL") from None
    if not to.startswith("postgresql+"):
        url = url.set(drivername="postgresql+psycopg")
    name = url.database or ""
    if not DATABASE_NAME.fullmatch(name) or name in (".", ".."):
        raise InvalidInput("to must name a new database: 1 to 46 characters, without control characters or slashes")
    if confine:
        if settings.is_sqlite:
            raise InvalidInput(
                "to: this server's store is on SQLite, so it has no PostgreSQL server to restore into; restore "
                "it with the CLI (`ragstore backup restore ID --to postgresql://...`)"
            )
        live = make_url(settings.sqlalchemy_url)
        if (url.host or "localhost", url.port or 5432, url.username) != (
            live.host or "localhost",
            live.port or 5432,
            live.username,
        ):
            raise InvalidInput(
                "to: restores through the API go only to a new database on the configured PostgreSQL server "
                "(the host, port and user of DATABASE_URL)"
            )
        if url.password is None:
            url = url.set(password=live.password)
    return url


def _restore_postgres(
    settings: Settings, repo: Any, manifest: Manifest, to: str | None, *, confine: bool = False
) -> tuple[RestorePlan, dict[str, Any]]:
    if to is None and settings.is_sqlite:
        raise InvalidInput(
            f"backup {manifest.id} is of a PostgreSQL store and this store is on SQLite: restore it with "
            "--to postgresql://..."
        )
    if to is None and manifest.pg_schema:
        # The live database may hold other schemas than ragstore's: swapping databases would take them away.
        raise InvalidInput(
            f"backup {manifest.id} is of the schema {manifest.pg_schema}, not a whole database: restore it with "
            "--to postgresql://host/new_database and point DATABASE_URL there"
        )
    live_url = make_url(settings.sqlalchemy_url) if to is None else _target_url(settings, manifest, to, confine=confine)
    if to is not None and manifest.pg_schema and search_path_schema(to) is None:
        # The dump holds the tables in their schema: connections to the copy must look there.
        live_url = live_url.update_query_dict({"options": f"-csearch_path={manifest.pg_schema}"})
    target_name = str(live_url.database)
    fresh = f"{target_name}_restore_{uuid.uuid4().hex[:8]}"
    admin_url = live_url.set(database="postgres").render_as_string(hide_password=False)
    admin = create_engine(admin_url)
    staging = settings.backup_staging / f"restore-{manifest.id}"
    remove_tree(staging)
    try:
        exists = _database_exists(admin, target_name)
        if to is not None and exists:
            raise InvalidInput(f"to: the database {target_name!r} exists already; name a new one")
        checks = verify_into(repo, manifest, staging, live_url=None, threads=settings.backup_threads)
        create_database(admin, fresh)
        fresh_url = live_url.set(database=fresh).render_as_string(hide_password=False)
        try:
            restore_pg_dump(staging / "database.pgdump", fresh_url, f"backup {manifest.id}")
            _prepare_postgres(fresh_url, manifest, drop_backend=to is not None and _switches_backend(manifest))
            check_database_counts(fresh_url, manifest)  # before the swap: a wrong copy never goes live
            checks["counts"] = "match"
            if exists:
                aside = f"{target_name}_pre_restore_{datetime.now(UTC).strftime('%Y%m%d%H%M%S')}"
                with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
                    c.execute(
                        text(
                            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                            "WHERE datname = :name AND pid <> pg_backend_pid()"
                        ),
                        {"name": target_name},
                    )
                rename_database(admin, target_name, aside)
            rename_database(admin, fresh, target_name)
        except BaseException:
            drop_database(admin, fresh)
            raise
        url = live_url.render_as_string(hide_password=False)
        update: dict[str, Any] = {"database_url": url}
        if to is not None and _switches_backend(manifest):
            update["vector_backend"] = self_contained_backend().name
        if to is not None:
            update["data_dir"] = settings.data_dir / f"restored-{target_name}"
        plan = RestorePlan(settings.model_copy(update=update), live=to is None)
        _place_index(staging / "index", plan.settings.index_dir.resolve(), manifest)
    finally:
        remove_tree(staging)
        admin.dispose()
    checks["database"] = target_name
    return plan, checks


def _place_index(restored: Path, index_dir: Path, manifest: Manifest) -> None:
    """Put the backup's index files where the store keeps them; whatever was there goes aside, since index
    files newer than the restored database would hold vectors it does not know."""
    aside = index_dir.parent / f"pre-restore-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}" / "index"
    _index_files(manifest).place_files(restored, index_dir, aside=aside)


def _database_exists(admin: Any, name: str) -> bool:
    with admin.connect() as c:
        return c.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).scalar() is not None


def _prepare_postgres(url: str, manifest: Manifest, *, drop_backend: bool) -> None:
    """Prepare the restored database, then give it planner statistics: pg_restore restores none, and without
    them PostgreSQL planned the store's lookups as scans of whole tables (the consistency check after
    restoring a million chunks read every chunk per batch of 900: over an hour, against seconds once
    analysed)."""
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            _prepare(conn, manifest, drop_backend=drop_backend)
            conn.exec_driver_sql("ANALYZE")  # in the same transaction: what it analyses is what was prepared
    finally:
        engine.dispose()
