"""Reading a backup back: reassemble its files, check every checksum, and check the database it holds.

Used by `backup verify` (into a temporary folder, then thrown away) and by every restore (beside the live
store, before anything is swapped), so a restore never puts in place what a verify would reject.
"""

from __future__ import annotations

import functools
import shutil
import sqlite3
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine
from sqlalchemy.engine import Engine, make_url

from ragstore.backup.blocks import WINDOW, assemble_file
from ragstore.backup.errors import BackupDamaged, BackupFailed
from ragstore.backup.manifest import CollectionCounts, Manifest
from ragstore.backup.repository import Repository
from ragstore.backup.snapshot import count_collections, libpq_command
from ragstore.backup.targets import check_manifest_names
from ragstore.config import Settings
from ragstore.security.audit_service import verify_copy
from ragstore.vectors.base import IndexFilesDamaged
from ragstore.vectors.registry import backend_spec

__all__ = [
    "check_counts",
    "check_database_counts",
    "create_database",
    "drop_database",
    "reassemble",
    "rename_database",
    "restore_pg_dump",
    "verify_into",
]

Progress = Callable[[str], None]


def reassemble(repo: Repository, manifest: Manifest, target: Path, *, threads: int = 3) -> None:
    """Every file of the backup under `target`, each checked block by block and whole.

    Every name the manifest holds is checked first (a file path that would land outside `target`, a map or
    block name outside the repository's folders), so a forged manifest writes nothing anywhere.
    """
    where = f"backup {manifest.id}"
    check_manifest_names([(f.path, f.map, f.blocks) for f in manifest.files], backup_id=manifest.id)
    if not 0 < manifest.block_size <= WINDOW:
        raise BackupDamaged(f"{where}: its manifest declares a block size of {manifest.block_size} bytes (altered)")
    block_limit = WINDOW + 4 * manifest.block_size  # a window of units plus the largest content-defined unit
    missing = repo.missing_blocks(manifest)
    if missing:
        first = missing[0] if missing[0].startswith("maps/") else repo.block_name(missing[0])
        writer = missing[0].split("/")[1] if missing[0].startswith("maps/") else repo.writer_of(missing[0])
        by = f" (written by backup {writer})" if writer else ""
        raise BackupDamaged(
            f"{where}: {len(missing)} of its blocks are missing from {repo.location}, first {first}{by}; "
            "the chain is broken and nothing was restored",
            details={"missing_blocks": missing[:20]},
        )
    for entry in manifest.files:
        assemble_file(repo, entry, target / entry.path, where=where, block_limit=block_limit, threads=threads)


def index_vector_counts(folder: Path, manifest: Manifest) -> dict[int, int]:
    """Vectors in each restored index file, read by the backend that wrote them (from the files themselves)."""
    files = backend_spec(manifest.vector_backend).file_keeper()
    try:
        return files.verify_files(folder / "index")
    except IndexFilesDamaged as exc:
        raise BackupDamaged(str(exc)) from None


def check_counts(expected: list[CollectionCounts], found: list[CollectionCounts], *, where: str) -> None:
    want = {c.id: c.model_dump() for c in expected}
    got = {c.id: c.model_dump() for c in found}
    if want != got:
        differing = sorted(k for k in want.keys() | got.keys() if want.get(k) != got.get(k))
        raise BackupDamaged(
            f"{where}: the restored counts differ from the manifest in collections {differing}",
            details={"expected": [want.get(k) for k in differing], "found": [got.get(k) for k in differing]},
        )


def check_sqlite(path: Path, manifest: Manifest, vectors: dict[int, int] | None) -> dict[str, Any]:
    where = f"backup {manifest.id}, file ragstore.db"
    conn = sqlite3.connect(str(path))
    try:
        result = [r[0] for r in conn.execute("PRAGMA integrity_check")]
    except sqlite3.DatabaseError as exc:
        raise BackupDamaged(f"{where}: not a readable SQLite database ({exc})") from None
    finally:
        conn.close()
    if result != ["ok"]:
        raise BackupDamaged(f"{where}: PRAGMA integrity_check failed: {'; '.join(result[:5])}")
    engine = create_engine(f"sqlite:///{path}")
    try:
        with engine.connect() as c:
            found = count_collections(c, vectors)
    finally:
        engine.dispose()
    check_counts(manifest.collections, found, where=f"backup {manifest.id}")
    return {"integrity_check": "ok", "counts": "match"}


def pg_restore_list(dump: Path, where: str) -> int:
    if shutil.which("pg_restore") is None:
        raise BackupFailed("pg_restore is not on PATH: install the PostgreSQL client (Debian: postgresql-client)")
    done = subprocess.run(["pg_restore", "--list", str(dump)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise BackupDamaged(f"{where}: pg_restore --list rejects the dump ({done.stderr.strip()[:300]})")
    return sum(1 for line in done.stdout.splitlines() if line and not line.startswith(";"))


def _ddl(admin: Engine, template: str, *names: str) -> None:
    """A database-level statement (outside a transaction) with names quoted by psycopg, never spliced in.
    psycopg is the `postgres` extra, imported only here: a SQLite store never gets this far."""
    from psycopg import sql

    statement = sql.SQL(template).format(*(sql.Identifier(name) for name in names))
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
        c.connection.driver_connection.execute(statement)  # type: ignore[union-attr]


def create_database(admin: Engine, name: str) -> None:
    _ddl(admin, "CREATE DATABASE {}", name)


def drop_database(admin: Engine, name: str) -> None:
    _ddl(admin, "DROP DATABASE IF EXISTS {} WITH (FORCE)", name)


def rename_database(admin: Engine, name: str, new_name: str) -> None:
    _ddl(admin, "ALTER DATABASE {} RENAME TO {}", name, new_name)


def restore_pg_dump(dump: Path, url: str, where: str) -> None:
    dbname, env = libpq_command(url)
    done = subprocess.run(
        ["pg_restore", "--no-owner", "--no-privileges", "--exit-on-error", dbname, str(dump)],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )
    if done.returncode != 0:
        raise BackupDamaged(f"{where}: pg_restore failed ({done.stderr.strip()[:300]})")


def check_database_counts(url: str, manifest: Manifest) -> None:
    """The restored database's counts against the manifest's (vectors aside: they live in the index)."""
    engine = create_engine(url)
    try:
        with engine.connect() as c:
            found = count_collections(c, None)
    finally:
        engine.dispose()
    expected = [c.model_copy(update={"vectors": None}) for c in manifest.collections]
    check_counts(expected, found, where=f"backup {manifest.id}")


def check_postgres(
    dump: Path, manifest: Manifest, live_url: str | None, audit_check: Callable[[str], str] | None = None
) -> dict[str, Any]:
    """`pg_restore --list`, then (given a server to use) a restore into a scratch database to count rows."""
    where = f"backup {manifest.id}, file database.pgdump"
    entries = pg_restore_list(dump, where)
    if live_url is None:
        return {"pg_restore_list": entries, "counts": "not compared (no PostgreSQL server given)"}
    admin = create_engine(live_url)
    scratch = f"ragstore_verify_{uuid.uuid4().hex[:12]}"
    try:
        create_database(admin, scratch)
        try:
            scratch_url = make_url(live_url).set(database=scratch).render_as_string(hide_password=False)
            restore_pg_dump(dump, scratch_url, where)
            check_database_counts(scratch_url, manifest)
            audit = audit_check(scratch_url) if audit_check is not None else None
        finally:
            drop_database(admin, scratch)
    finally:
        admin.dispose()
    checks: dict[str, Any] = {"pg_restore_list": entries, "counts": "match"}
    if audit is not None:
        checks["audit"] = audit
    return checks


def verify_into(
    repo: Repository,
    manifest: Manifest,
    folder: Path,
    *,
    live_url: str | None,
    threads: int = 3,
    audit: Settings | None = None,
) -> dict[str, Any]:
    """Reassemble into `folder` and check everything; returns what was checked and how long it took.

    Given `audit` (the store's settings: its signing key), the copied audit log must verify as well."""
    audit_check = None if audit is None else functools.partial(check_audit_copy, audit, manifest=manifest)
    started = time.perf_counter()
    reassemble(repo, manifest, folder, threads=threads)
    read_s = time.perf_counter() - started
    vectors = index_vector_counts(folder, manifest) if manifest.index_included else None
    if manifest.dialect == "sqlite":
        checks = check_sqlite(folder / "ragstore.db", manifest, vectors)
        if audit_check is not None:
            checks["audit"] = audit_check(f"sqlite:///{(folder / 'ragstore.db').resolve()}")
    else:
        checks = check_postgres(folder / "database.pgdump", manifest, live_url, audit_check)
        if vectors is not None:
            expected = {c.id: c.vectors for c in manifest.collections if c.vectors}
            if {k: v for k, v in vectors.items() if v} != expected:
                raise BackupDamaged(f"backup {manifest.id}: the index files' vector counts differ from the manifest")
    checks["files"] = len(manifest.files)
    checks["blocks"] = sum(len(f.blocks) for f in manifest.files)
    checks["bytes"] = manifest.logical_bytes
    checks["read_s"] = round(read_s, 3)
    checks["total_s"] = round(time.perf_counter() - started, 3)
    return checks


def check_audit_copy(settings: Settings, url: str, *, manifest: Manifest) -> str:
    """The copied audit log verifies against the checkpoint the backup carries (BackupDamaged if not)."""
    result = verify_copy(settings, url, manifest.audit_checkpoint)
    if not result.ok:
        raise BackupDamaged(
            f"backup {manifest.id}: its audit log does not verify at sequence {result.first_bad_sequence} "
            f"({result.problem}): {result.reason}"
        )
    return f"verified: {result.rows_checked} rows, {result.checkpoints_checked} checkpoints"
