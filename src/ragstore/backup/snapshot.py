"""One consistent point in time of the store, with its counts: index files copied into a staging folder,
then the database held still in place (SQLite) or dumped (PostgreSQL).

The index files are copied first and the database second, so the database is never behind the index:
a restored store replays the outbox operations the index files had not reached (or rebuilds a collection
whose operations were pruned), exactly as it recovers after a crash, and never holds a vector SQL does
not know. A SQLite database is held still by a read transaction that sees its file alone (`frozen.py`)
and is stored from the live file while writers go on (WAL); when that cannot be had, it is copied page by
page through the online backup API in one step, which holds a read transaction the same way. PostgreSQL
is dumped by `pg_dump` inside a snapshot that this process exports and counts from, so the manifest's
counts are those of the dump.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, Connection, Engine, make_url

from ragstore.backup.blocks import Chunking
from ragstore.backup.errors import BackupFailed, NoSpace
from ragstore.backup.frozen import FrozenDatabase, freeze
from ragstore.backup.manifest import CollectionCounts
from ragstore.vectors.base import KeepsFiles

__all__ = [
    "COUNTS_SQL",
    "IndexExport",
    "Snapshot",
    "StagedFile",
    "count_collections",
    "estimate_bytes",
    "libpq_command",
    "take_snapshot",
]

COUNTS_SQL = """
SELECT c.id, c.name, c.dimension, c.embedding_model,
  (SELECT count(*) FROM documents d WHERE d.collection_id = c.id),
  (SELECT count(*) FROM document_chunks k WHERE k.collection_id = c.id),
  (SELECT count(*) FROM document_chunks k WHERE k.collection_id = c.id AND k.status = 'indexed'),
  (SELECT count(*) FROM document_chunks k JOIN embeddings e
     ON e.model = c.embedding_model AND e.content_hash = k.content_hash WHERE k.collection_id = c.id)
FROM collections c ORDER BY c.id
"""
REVISION_SQL = "SELECT version_num FROM alembic_version"
IDENTITY_SQL = "SELECT value FROM sync_markers WHERE name = 'store_id'"


@dataclass
class StagedFile:
    path: Path
    rel: str
    role: Literal["database", "index"]
    chunking: Chunking
    held: FrozenDatabase | None = None  # a live database held still: store its snapshot's bytes, read by it


@dataclass(frozen=True)
class IndexExport:
    """The index a snapshot carries: the directory a file-keeping backend keeps, and that backend's class,
    which alone knows the files' names (the snapshot puts whatever it exports under `index/`)."""

    files: type[KeepsFiles]
    directory: Path


@dataclass
class Snapshot:
    files: list[StagedFile] = field(default_factory=list)
    collections: list[CollectionCounts] = field(default_factory=list)
    revision: str | None = None
    store_identity: int = 0
    timings: dict[str, float] = field(default_factory=dict)
    frozen: FrozenDatabase | None = None  # the read that holds a live database still, until `release`

    def release(self) -> None:
        """End the read that holds the live database still (after its bytes are stored); idempotent."""
        if self.frozen is not None:
            frozen, self.frozen = self.frozen, None
            frozen.release()


def count_collections(conn: Connection, vectors: dict[int, int] | None = None) -> list[CollectionCounts]:
    return collections_from_rows(conn.execute(text(COUNTS_SQL)), vectors)


def collections_from_rows(rows: Iterable[Any], vectors: dict[int, int] | None) -> list[CollectionCounts]:
    """COUNTS_SQL's rows, from SQLAlchemy or from a plain sqlite3 connection (a held read)."""
    found = []
    for cid, name, dim, model, docs, chunks, indexed, embedded in rows:
        found.append(
            CollectionCounts(
                id=int(cid),
                name=str(name),
                dimension=int(dim),
                embedding_model=str(model),
                documents=int(docs),
                chunks=int(chunks),
                indexed_chunks=int(indexed),
                embeddings=int(embedded),
                vectors=None if vectors is None else vectors.get(int(cid), 0),
            )
        )
    return found


def _identity_and_revision(scalar: Callable[[str], Any]) -> tuple[int, str | None]:
    """The store's identity and schema revision, read by `scalar` (a statement's first value, or None)."""
    identity = scalar(IDENTITY_SQL)
    revision = scalar(REVISION_SQL)
    return int(identity or 0), None if revision is None else str(revision)


def _scalar_of(conn: Connection) -> Callable[[str], Any]:
    return lambda sql: conn.execute(text(sql)).scalar()


def libpq_command(sqlalchemy_url: str) -> tuple[str, dict[str, str]]:
    """`--dbname` for pg_dump or pg_restore without the password, and the environment that carries it: a
    command line is readable by every user of the machine (`ps`), the process's environment is not."""
    url = make_url(sqlalchemy_url).set(drivername="postgresql")
    env = dict(os.environ)
    if url.password is not None:
        env["PGPASSWORD"] = str(url.password)
    bare = URL.create(url.drivername, url.username, None, url.host, url.port, url.database, url.query)
    return f"--dbname={bare.render_as_string(hide_password=False)}", env


def sqlite_snapshot(live: Path, staging: Path) -> Path:
    """Copy the live database into `staging` through the online backup API, in one step.

    The copy is read back at once and removed before the backup's blocks are made durable, so it is written
    without a journal and without fsync: with SQLite's defaults the copy's commit waited for all of it to
    reach the disk, only for the file to be deleted seconds later (it never needs to be written at all). A
    crash mid-copy leaves an unusable staging file either way; no backup ever reads one it did not just make.
    """
    copy = staging / "ragstore.db"
    src = sqlite3.connect(str(live), timeout=60)
    dst = sqlite3.connect(str(copy))
    try:
        dst.execute("PRAGMA journal_mode=OFF")
        dst.execute("PRAGMA synchronous=OFF")
        src.backup(dst)  # one step (pages=-1): a single read transaction, so one point in time
    except sqlite3.OperationalError as exc:
        if "full" in str(exc).lower():
            raise NoSpace(f"the staging folder {staging} is full: no space left copying the database") from None
        raise
    finally:
        dst.close()
        src.close()
    return copy


@contextlib.contextmanager
def exported_snapshot(engine: Engine) -> Iterator[tuple[Connection, str]]:
    """A repeatable-read transaction whose snapshot pg_dump can share (`--snapshot`)."""
    with engine.connect().execution_options(isolation_level="REPEATABLE READ") as conn, conn.begin():
        conn.execute(text("SET TRANSACTION READ ONLY"))
        snapshot_id = str(conn.execute(text("SELECT pg_export_snapshot()")).scalar())
        yield conn, snapshot_id


def search_path_schema(url: str) -> str | None:
    """The schema a URL's connections use (`options=-csearch_path=NAME`), which is all that is dumped."""
    options = make_url(url).query.get("options")
    text_value = options if isinstance(options, str) else " ".join(options or ())
    for part in text_value.split():
        if part.startswith("-csearch_path="):
            return part.split("=", 1)[1].split(",")[0].strip('"') or None
    return None


def pg_dump(url: str, snapshot_id: str, target: Path) -> None:
    if shutil.which("pg_dump") is None:
        raise BackupFailed("pg_dump is not on PATH: install the PostgreSQL client (Debian: postgresql-client)")
    dbname, env = libpq_command(url)
    command = [
        "pg_dump",
        "--format=custom",
        "--compress=0",  # the repository compresses, after cutting the dump into deduplicated blocks
        "--no-owner",
        "--no-privileges",
        f"--snapshot={snapshot_id}",
        f"--file={target}",
        dbname,
    ]
    schema = search_path_schema(url)
    if schema is not None:
        command.append(f"--schema={schema}")
    done = subprocess.run(command, capture_output=True, text=True, check=False, env=env)
    if done.returncode != 0:
        message = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}"
        if "No space left" in done.stderr:
            raise NoSpace(f"the staging folder {target.parent} is full: pg_dump failed ({message})")
        raise BackupFailed(f"pg_dump failed: {message}")


def take_snapshot(
    engine: Engine,
    *,
    sqlite_path: Path | None,
    index: IndexExport | None,
    collection_ids: list[int],
    staging: Path,
    staged: Callable[[list[StagedFile]], None] | None = None,
) -> Snapshot:
    """Copy the index files (when `index` is given) into `staging`, then hold or copy the database.

    `staged` is handed files as soon as they can be read (the index files when copied; a live SQLite
    database as soon as a read holds it still, before its counts are taken), so they can be stored
    meanwhile. A SQLite database held still (`frozen`) is read in place: the caller stores it and then
    calls `Snapshot.release`. Otherwise it is copied through the backup API into `staging`."""
    staging.mkdir(parents=True, exist_ok=True)
    snap = Snapshot()
    vectors: dict[int, int] | None = None
    started = time.perf_counter()
    if index is not None:
        vectors = index.files.export_files(index.directory, collection_ids, staging / "index")
        for name in sorted(os.listdir(staging / "index")):
            snap.files.append(StagedFile(staging / "index" / name, f"index/{name}", "index", "fixed"))
        snap.timings["index_copy_s"] = round(time.perf_counter() - started, 3)
        if staged is not None:
            staged(list(snap.files))
    started = time.perf_counter()
    if sqlite_path is not None:
        snap.frozen = freeze(sqlite_path)
        try:
            if snap.frozen is not None:
                db = StagedFile(sqlite_path, "ragstore.db", "database", "fixed", held=snap.frozen)
                if staged is not None:
                    staged([db])
                held = snap.frozen.connection
                snap.collections = collections_from_rows(held.execute(COUNTS_SQL), vectors)
                snap.store_identity, snap.revision = _identity_and_revision(
                    lambda sql: (held.execute(sql).fetchone() or (None,))[0]
                )
            else:
                db = _copied_sqlite(sqlite_path, staging, snap, vectors)
        except BaseException:
            snap.release()
            raise
        snap.files.insert(0, db)
    else:
        dump = staging / "database.pgdump"
        with exported_snapshot(engine) as (conn, snapshot_id):
            snap.collections = count_collections(conn, vectors)
            snap.store_identity, snap.revision = _identity_and_revision(_scalar_of(conn))
            pg_dump(engine.url.render_as_string(hide_password=False), snapshot_id, dump)
        snap.files.insert(0, StagedFile(dump, "database.pgdump", "database", "content"))
    snap.timings["database_copy_s"] = round(time.perf_counter() - started, 3)
    return snap


def _copied_sqlite(live: Path, staging: Path, snap: Snapshot, vectors: dict[int, int] | None) -> StagedFile:
    """The slower path, when the database cannot be held still: a copy in staging, counted there."""
    copy = sqlite_snapshot(live, staging)
    engine = create_engine(f"sqlite:///{copy}")
    try:
        with engine.connect() as conn:
            snap.collections = count_collections(conn, vectors)
            snap.store_identity, snap.revision = _identity_and_revision(_scalar_of(conn))
    finally:
        engine.dispose()
    return StagedFile(copy, "ragstore.db", "database", "fixed")


def estimate_bytes(sqlite_path: Path | None, index: IndexExport | None) -> int:
    """About what a snapshot will occupy in staging (for the free-space check before it starts)."""
    total = 0
    if sqlite_path is not None:
        for suffix in ("", "-wal"):
            with contextlib.suppress(OSError):
                total += Path(f"{sqlite_path}{suffix}").stat().st_size
    if index is not None:
        total += index.files.files_size(index.directory)
    return total
