"""Schema migrations: Alembic revisions plus a checksum of every applied revision file.

An applied revision that is edited afterwards no longer describes the database it ran on; ragstore refuses
to start on such a database and names the file, instead of drifting silently.
"""

from __future__ import annotations

import fcntl
import hashlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, delete, insert, inspect, select, text

from ragstore.db.models import MigrationChecksum
from ragstore.errors import MigrationError, NotFound

__all__ = ["MIGRATIONS_DIR", "MigrationStatus", "Migrator", "include_object_for"]

MIGRATIONS_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True)
class RevisionInfo:
    revision: str
    filename: str
    message: str
    applied: bool


@dataclass(frozen=True)
class MigrationStatus:
    current: str | None
    head: str
    revisions: list[RevisionInfo]

    @property
    def up_to_date(self) -> bool:
        return self.current == self.head


# Any constant shared by every ragstore process: the key of the PostgreSQL advisory lock around migrations.
MIGRATION_LOCK_KEY = 0x7261_6773_746F  # "ragsto"


# Objects the migrations create that the models do not declare: the full-text index over `chunk_lexemes`
# and `message_lexemes` (SQLite's FTS5 tables, their shadow tables and fts5vocab tables; PostgreSQL's
# generated tsvector columns and their GIN indexes), and the monthly partitions of `api_usage_logs` on
# PostgreSQL (migration 0010).
DATABASE_ONLY_TABLE_PREFIX = (
    "chunk_lexemes_fts",
    "chunk_lexemes_vocab",
    "api_usage_logs_",
    "message_lexemes_fts",
    "message_lexemes_vocab",
)
DATABASE_ONLY = frozenset({("column", "tsv"), ("index", "ix_chunk_lexemes_tsv"), ("index", "ix_message_lexemes_tsv")})


def include_object_for(dialect: str) -> Callable[..., bool]:
    """Alembic's comparison hook: leave out schema objects the models declare for another dialect only
    (`Index(...).ddl_if(dialect=...)`, such as the JSONB GIN index), which autogenerate does not filter,
    and the database-only objects of the lexical index."""

    def include(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
        if reflected and compare_to is None:
            if type_ == "table" and (name or "").startswith(DATABASE_ONLY_TABLE_PREFIX):
                return False
            if (type_, name) in DATABASE_ONLY:
                return False
        ddl_if = getattr(obj, "_ddl_if", None)
        wanted = getattr(ddl_if, "dialect", None)
        if wanted is None:
            return True
        return dialect in ((wanted,) if isinstance(wanted, str) else tuple(wanted))

    return include


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class Migrator:
    """Upgrades, downgrades and verifies one database."""

    def __init__(self, engine: Engine, directory: Path = MIGRATIONS_DIR) -> None:
        self.engine = engine
        self.config = Config()
        self.config.set_main_option("script_location", str(directory))
        self.scripts = ScriptDirectory.from_config(self.config)

    def _revision_file(self, revision: str) -> Path:
        script = self.scripts.get_revision(revision)
        if script is None or script.path is None:
            raise MigrationError(f"revision {revision} is recorded in the database but has no file")
        return Path(script.path)

    def current(self) -> str | None:
        with self.engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    def head(self) -> str:
        head = self.scripts.get_current_head()
        assert head is not None
        return head

    def _applied_chain(self, current: str | None) -> list[str]:
        if current is None:
            return []
        return [s.revision for s in self.scripts.iterate_revisions(current, "base")]

    def status(self) -> MigrationStatus:
        current = self.current()
        applied = set(self._applied_chain(current))
        revisions = [
            RevisionInfo(
                revision=s.revision,
                filename=Path(s.path).name if s.path else "",
                message=s.doc or "",
                applied=s.revision in applied,
            )
            for s in reversed(list(self.scripts.walk_revisions()))
        ]
        return MigrationStatus(current=current, head=self.head(), revisions=revisions)

    def upgrade(self, target: str = "head") -> str | None:
        with self._exclusive():
            self._run(command.upgrade, target)
            self._record_checksums()
        return self.current()

    def downgrade(self, target: str) -> str | None:
        if target != "base" and self.scripts.get_revision(target) is None:
            raise NotFound(f"no migration revision {target!r}")
        with self._exclusive():
            self._run(command.downgrade, target)
            self._record_checksums()
        return self.current()

    @contextmanager
    def _exclusive(self) -> Iterator[None]:
        """One migrator at a time per database: processes that start together (`serve --workers N` on an
        empty database, a worker beside a server) would otherwise race to create the same tables. The
        second waits, then finds the schema at head and does nothing."""
        if self.engine.dialect.name == "postgresql":
            with self.engine.connect() as conn:
                conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
                try:
                    yield
                finally:
                    conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK_KEY})
                    conn.commit()
            return
        database = self.engine.url.database
        if not database or database == ":memory:":
            yield
            return
        with open(f"{database}.migrate.lock", "a+b") as lock_file:
            fcntl.flock(lock_file, fcntl.LOCK_EX)
            yield

    def _run(self, fn: object, target: str) -> None:
        if self.engine.dialect.name == "sqlite":
            self._run_sqlite(fn, target)
            return
        with self.engine.begin() as conn:
            self.config.attributes["connection"] = conn
            try:
                fn(self.config, target)  # type: ignore[operator]
            finally:
                self.config.attributes.pop("connection", None)

    def _run_sqlite(self, fn: object, target: str) -> None:
        """SQLite changes a constraint by rebuilding the table (Alembic's batch mode: copy, drop, rename), which
        is only safe the way SQLite's own ALTER TABLE procedure says: foreign keys off, so dropping the old
        table does not cascade into its children, and the legacy rename, so that the views naming the table
        are not checked while it is briefly gone. Both pragmas only take effect outside a transaction, so
        they are set on the raw connection before the migration's transaction begins; afterwards
        `foreign_key_check` must find nothing, or the whole migration is rolled back."""
        with self.engine.connect() as conn:
            raw = conn.connection.driver_connection
            assert raw is not None
            raw.execute("PRAGMA foreign_keys=OFF")
            raw.execute("PRAGMA legacy_alter_table=ON")
            try:
                with conn.begin():
                    self.config.attributes["connection"] = conn
                    try:
                        fn(self.config, target)  # type: ignore[operator]
                    finally:
                        self.config.attributes.pop("connection", None)
                    broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                    if broken:
                        raise RuntimeError(
                            f"the migration left {len(broken)} rows whose foreign keys point nowhere "
                            f"(first: table {broken[0][0]}, row {broken[0][1]}); nothing was changed"
                        )
            finally:
                raw.execute("PRAGMA legacy_alter_table=OFF")
                raw.execute("PRAGMA foreign_keys=ON")

    def _has_checksum_table(self) -> bool:
        return inspect(self.engine).has_table(MigrationChecksum.__tablename__)

    def _record_checksums(self) -> None:
        """Keep exactly one checksum row per applied revision (new ones added, downgraded ones removed)."""
        applied = self._applied_chain(self.current())
        if not self._has_checksum_table():
            return
        with self.engine.begin() as conn:
            known = {row[0] for row in conn.execute(select(MigrationChecksum.revision))}
            gone = known - set(applied)
            if gone:
                conn.execute(delete(MigrationChecksum).where(MigrationChecksum.revision.in_(gone)))
            for rev in applied:
                if rev in known:
                    continue
                path = self._revision_file(rev)
                conn.execute(insert(MigrationChecksum).values(revision=rev, filename=path.name, sha256=_sha256(path)))

    def verify_checksums(self) -> None:
        """Raise MigrationError naming the file if an applied revision differs from what was applied."""
        if not self._has_checksum_table():
            return
        with self.engine.connect() as conn:
            rows = conn.execute(select(MigrationChecksum.revision, MigrationChecksum.sha256)).all()
        for revision, recorded in rows:
            path = self._revision_file(revision)
            actual = _sha256(path)
            if actual != recorded:
                raise MigrationError(
                    f"migration file {path} (revision {revision}) was edited after it was applied to this "
                    f"database: its SHA-256 is {actual[:12]}…, the database recorded {recorded[:12]}…. "
                    "Restore the original file, or add a new revision instead of editing an applied one.",
                    details={"file": str(path), "revision": revision},
                )

    def ensure_current(self, auto_upgrade: bool) -> None:
        """Verify checksums, then bring the schema to head or refuse to run on an old one."""
        self.verify_checksums()
        current = self.current()
        if current == self.head():
            return
        if auto_upgrade:
            self.upgrade("head")
            return
        raise MigrationError(
            f"the database schema is at {current or 'nothing (empty database)'}, ragstore needs {self.head()}: "
            "run `ragstore init` (or `ragstore migrate upgrade`)"
        )
