"""Engine and sessions: SQLite tuned for a concurrent service, PostgreSQL from the same code.

SQLite runs in WAL mode so readers never block the writer. Write units begin with `BEGIN IMMEDIATE`, so a
writer waits for the lock up front (honouring busy_timeout) instead of failing half-way when it upgrades a
read lock; a unit that still meets "database is locked" is retried whole, which is safe because it has
not committed anything.

On PostgreSQL a lost connection (a server restart, a failover, a killed backend) surfaces as
`Unavailable` (HTTP 503), never as a raw driver error. A write unit that lost its connection *before*
COMMIT is retried on a fresh connection (nothing of it was stored); one that lost it *during* COMMIT is
not, because the server may have committed it: the caller is told the outcome is unknown, and no write
is ever acknowledged that was not stored.
"""

from __future__ import annotations

import logging
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Engine, create_engine, event, make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import QueuePool

from ragstore.config import Settings
from ragstore.db.failures import classify, first_line, is_locked, is_transient
from ragstore.db.liveness import check_before_use
from ragstore.db.slow import SlowStatementLog
from ragstore.errors import Unavailable
from ragstore.telemetry import DB_CONNECTIONS, DB_POOL_OVERFLOW, DB_QUERY_DURATION, statement_kind

__all__ = ["Database"]

log = logging.getLogger(__name__)
T = TypeVar("T")


def _configure_sqlite(dbapi_conn: Any, settings: Settings) -> None:
    """The pragmas every SQLite connection of ragstore runs with."""
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute(f"PRAGMA busy_timeout={int(settings.sqlite_busy_timeout_ms)}")
    cur.execute(f"PRAGMA cache_size=-{int(settings.sqlite_cache_size_mb * 1024)}")
    cur.execute("PRAGMA temp_store=MEMORY")
    cur.close()


RECONNECT_ATTEMPTS = 4


def _is_disconnect(exc: DBAPIError) -> bool:
    """A lost or refused PostgreSQL connection (not a bad statement): what a server restart produces.

    SQLite has no connection to lose; its `OperationalError` (same class name) is classified by
    `db/failures.py` instead, or a full disk would be reported as an unreachable database.
    """
    if exc.connection_invalidated:
        return True
    if isinstance(exc.orig, sqlite3.Error):
        return False
    name = type(exc.orig).__name__
    return name in {"AdminShutdown", "OperationalError", "InterfaceError", "ConnectionFailure", "CannotConnectNow"}


_first_line = first_line
_is_locked = is_locked


def _instrument(engine: Engine, slow: SlowStatementLog) -> None:
    """Count every statement's duration and the connections checked out (telemetry.py, GET /metrics). The
    search path's raw SQLite reads (`raw_sqlite_rows`) bypass SQLAlchemy and are not counted here: the
    search duration covers them."""
    dialect = engine.dialect.name
    in_use = DB_CONNECTIONS.labels(dialect)

    @event.listens_for(engine, "before_cursor_execute")
    def _started(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        conn.info.setdefault("ragstore_started", []).append(time.perf_counter())

    @event.listens_for(engine, "after_cursor_execute")
    def _finished(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        started = conn.info.get("ragstore_started")
        if started:
            seconds = time.perf_counter() - started.pop()
            DB_QUERY_DURATION.labels(dialect, statement_kind(statement)).observe(seconds)
            slow.note(statement, seconds)

    @event.listens_for(engine, "handle_error")
    def _failed(context: Any) -> None:
        conn = context.connection
        if conn is not None and conn.info.get("ragstore_started"):
            conn.info["ragstore_started"].pop()

    overflow = DB_POOL_OVERFLOW.labels(dialect)
    pool = engine.pool

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_conn: Any, record: Any, proxy: Any) -> None:
        in_use.inc()
        if isinstance(pool, QueuePool):
            overflow.set(max(0, pool.overflow()))

    @event.listens_for(engine, "checkin")
    def _checked_in(dbapi_conn: Any, record: Any) -> None:
        in_use.dec()
        if isinstance(pool, QueuePool):
            overflow.set(max(0, pool.overflow()))


class Database:
    """Owns the engine; hands out read sessions and retried write units."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.url = settings.sqlalchemy_url
        self.is_sqlite = self.url.startswith("sqlite")
        if self.is_sqlite:
            self.engine = self._sqlite_engine(settings)
        else:
            self.engine = self._postgres_engine(settings)
        # Statements slower than RAGSTORE_SLOW_QUERY_MS, kept by fingerprint until `flush_slow` (db/slow.py).
        self.slow = SlowStatementLog(settings.slow_query_ms, self.engine.dialect.name)
        _instrument(self.engine, self.slow)
        self._write_engine: Engine = (
            self.engine.execution_options(sqlite_begin="IMMEDIATE") if self.is_sqlite else self.engine
        )
        self._read = sessionmaker(self.engine, expire_on_commit=False)
        self._raw = threading.local()
        self._raw_conns: list[Any] = []
        self._raw_lock = threading.Lock()
        self._busy_s = settings.sqlite_busy_timeout_ms / 1000
        # Single statements that only read need no explicit transaction: each runs in its own snapshot, which
        # saves the BEGIN and ROLLBACK, two round trips per statement on PostgreSQL's search path.
        self.autocommit_reads: Engine = (
            self.engine.execution_options(sqlite_begin="NONE")
            if self.is_sqlite
            else self.engine.execution_options(isolation_level="AUTOCOMMIT")
        )
        self._write = sessionmaker(self._write_engine, expire_on_commit=False)

    @staticmethod
    def _sqlite_engine(settings: Settings) -> Engine:
        if settings.database_url is None:
            settings.data_dir.mkdir(parents=True, exist_ok=True)
        # The pool's sizes as PostgreSQL's: SQLAlchemy's default for a file (5, and 10 overflow connections
        # closed on return) made a server under 50 clients open a connection, and run its pragmas, per read.
        engine = create_engine(
            settings.sqlalchemy_url,
            connect_args={"check_same_thread": False, "timeout": settings.sqlite_busy_timeout_ms / 1000},
            pool_size=settings.database_pool_size,
            max_overflow=settings.database_max_overflow,
            pool_timeout=settings.database_pool_timeout_s,
            future=True,
        )

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            # Let SQLAlchemy's "begin" event below emit BEGIN, so write units can ask for IMMEDIATE.
            dbapi_conn.isolation_level = None
            _configure_sqlite(dbapi_conn, settings)

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Any) -> None:
            mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
            if mode != "NONE":
                conn.exec_driver_sql(f"BEGIN {mode}")

        return engine

    @staticmethod
    def _postgres_engine(settings: Settings) -> Engine:
        """A pooled engine whose connections are checked before use (db/liveness.py: a ping unless the
        connection was used moments ago and its socket is quiet), so a restarted server costs one reconnect
        rather than a failed request, and whose statements cannot run forever."""
        url = make_url(settings.sqlalchemy_url)
        # Keep libpq options given in the URL (a search_path, say) beside the statement timeout.
        given = url.query.get("options", "")
        given = " ".join(given) if isinstance(given, tuple) else given
        options = f"{given} -c statement_timeout={settings.database_statement_timeout_ms}".strip()
        engine = create_engine(
            url,
            pool_size=settings.database_pool_size,
            max_overflow=settings.database_max_overflow,
            pool_timeout=settings.database_pool_timeout_s,
            pool_recycle=settings.database_pool_recycle_s,
            connect_args={
                "connect_timeout": settings.database_connect_timeout_s,
                "application_name": "ragstore",
                "options": options,
            },
        )
        check_before_use(engine)
        return engine

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A session for reads. Closing it (not rolling back) leaves loaded objects usable after the block;
        the pool still ends the transaction when the connection returns."""
        try:
            with self._read() as session:
                yield session
        except DBAPIError as exc:
            raise self._domain_error(exc) from exc

    def fetch(self, statement: Any, params: dict[str, Any] | None = None) -> list[Any]:
        """Rows of one read-only Core statement, without a session or an explicit transaction."""
        try:
            with self.autocommit_reads.connect() as conn:
                return list(conn.execute(statement, params or {}).all())
        except DBAPIError as exc:
            raise self._domain_error(exc) from exc

    def _domain_error(self, exc: DBAPIError) -> Exception:
        """What to raise for a driver error outside a write unit: a lost connection is `Unavailable`, a
        condition `db/failures.py` knows is its category, anything else stays the driver's error."""
        if not self.is_sqlite and _is_disconnect(exc):
            return Unavailable(f"the database is unreachable: {_first_line(exc)}")
        return classify(exc, is_sqlite=self.is_sqlite) or exc

    def raw_postgres_rows(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        """Rows of one read-only statement (psycopg's `%s` parameters) with its results in binary format
        (PostgreSQL only).

        For the search path's reads of vectors: in text format a `bytea` comes as hex, twice its bytes and a
        decoding pass (a hundred candidates' two vectors: 3.2 -> 1.9 ms, docs/benchmarks.md, issue #22), and
        SQLAlchemy's dialect asks for text. The connection is a pooled one, checked and in autocommit as for
        `fetch`; the statement is timed into the same metrics and slow-statement log, and a lost connection
        is invalidated and reported as `Unavailable`.
        """
        with self.autocommit_reads.connect() as conn:
            started = time.perf_counter()
            try:
                with conn.connection.driver_connection.cursor(binary=True) as cursor:  # type: ignore[union-attr]
                    rows = cursor.execute(sql, params, prepare=True).fetchall()
            except Exception as exc:
                if not type(exc).__module__.startswith("psycopg"):
                    raise
                failed = DBAPIError(sql, params, exc)
                if _is_disconnect(failed) or conn.connection.driver_connection.broken:  # type: ignore[union-attr]
                    conn.invalidate(exc)
                    raise Unavailable(f"the database is unreachable: {_first_line(failed)}") from exc
                raise self._domain_error(failed) from exc
            seconds = time.perf_counter() - started
        DB_QUERY_DURATION.labels("postgresql", statement_kind(sql)).observe(seconds)
        self.slow.note(sql, seconds)
        return [tuple(r) for r in rows]

    def raw_sqlite_rows(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        """Rows of one read-only statement on this thread's own DBAPI connection (SQLite only).

        For the search path alone: SQLAlchemy's per-statement work costs ~100 µs, more than SQLite's own
        ~30 µs for the query. The connection is this thread's own, with the same pragmas as the pool's, and
        it stays in autocommit, so it holds no lock between queries.
        """
        conn = getattr(self._raw, "conn", None)
        if conn is None:
            # A connection of this thread's own, outside the pool: a server runs dozens of request threads,
            # and each holding a pooled connection for good would exhaust the pool and stall every request.
            conn = sqlite3.connect(
                self.engine.url.database or "", check_same_thread=False, isolation_level=None, timeout=self._busy_s
            )
            _configure_sqlite(conn, self.settings)
            self._raw.conn = conn
            with self._raw_lock:
                self._raw_conns.append(conn)
        cursor = conn.cursor()
        try:
            return list(cursor.execute(sql, params).fetchall())
        finally:
            cursor.close()

    def write(self, unit: Callable[[Session], T]) -> T:
        """Run `unit` in one transaction and commit it; retried whole while SQLite reports a lock, when a
        PostgreSQL connection was lost before COMMIT, or when PostgreSQL aborted it as a deadlock victim or a
        serialization failure (it committed nothing, so running it again is safe)."""
        attempts = self.settings.sqlite_lock_retries + 1 if self.is_sqlite else RECONNECT_ATTEMPTS
        for attempt in range(1, attempts + 1):
            committing = False
            try:
                with self._write() as session, session.begin():
                    result = unit(session)
                    committing = True
                return result
            except DBAPIError as exc:
                if not self.is_sqlite and _is_disconnect(exc):
                    if committing:
                        raise Unavailable(
                            "the connection to the database was lost while committing; the write may or may not "
                            f"have been stored: {_first_line(exc)}"
                        ) from exc
                    if attempt == attempts:
                        raise Unavailable(f"the database is unreachable: {_first_line(exc)}") from exc
                    delay = min(2.0, 0.1 * 2**attempt)
                    log.warning("lost the database connection (%s); retrying in %.1fs", _first_line(exc), delay)
                    time.sleep(delay)
                    continue
                retryable = (self.is_sqlite and isinstance(exc, OperationalError) and _is_locked(exc)) or (
                    not self.is_sqlite and is_transient(exc) and not committing
                )
                if not retryable:
                    known = classify(exc, is_sqlite=self.is_sqlite)
                    if known is not None:
                        raise known from exc
                    raise
                if attempt == attempts:
                    raise Unavailable(
                        f"the database stayed locked by another writer after {attempts} attempts; retry shortly"
                        if self.is_sqlite
                        else f"the transaction kept clashing with concurrent ones: {_first_line(exc)}; retry shortly"
                    ) from exc
                delay = min(2.0, 0.05 * 2**attempt) * (0.5 + random.random())
                log.warning("%s; retrying the transaction in %.2fs (attempt %d)", _first_line(exc), delay, attempt)
                time.sleep(delay)
        raise AssertionError("unreachable")

    def flush_slow(self, now: datetime) -> int:
        """Add this process's slow statements to `slow_statements` (db/slow.py); how many fingerprints. No
        transaction when there are none (a store closing on a busy or read-only database must not wait)."""
        if not self.slow.pending():
            return 0
        return self.write(lambda s: self.slow.flush(s, now))

    def dispose(self) -> None:
        with self._raw_lock:
            for conn in self._raw_conns:
                conn.close()
            self._raw_conns.clear()
        if self.is_sqlite:
            # Let SQLite refresh its planner statistics, as its documentation advises before closing.
            try:
                with self.engine.connect() as conn:
                    conn.exec_driver_sql("PRAGMA optimize")
            except Exception as exc:
                log.debug("PRAGMA optimize failed: %s", exc)
        self.engine.dispose()
