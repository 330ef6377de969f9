"""What the relational store holds and how it is used: `ragstore db stats`.

An operator keeping a database in shape over months asks which tables and indexes grow, which indexes are
never used, whether reads come from memory, and (PostgreSQL) how much of a table is dead rows waiting for a
vacuum. Each dialect answers from its own catalogue: PostgreSQL from `pg_stat_user_tables`,
`pg_stat_user_indexes` and `pg_statio_user_tables` (this schema's relations only); SQLite from `dbstat`
(page sizes), exact row counts, and the WAL file's size. What a dialect cannot tell is None, never a guess.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from ragstore.db.engine import Database

__all__ = ["DatabaseStats", "IndexStats", "TableStats", "database_size", "database_stats"]


@dataclass(frozen=True)
class TableStats:
    name: str
    rows: int  # SQLite: counted; PostgreSQL: the planner's estimate from the last ANALYZE (no table scan)
    bytes: int | None  # the table with its indexes and TOAST (PostgreSQL); its own pages (SQLite)
    dead_rows: int | None = None  # PostgreSQL: rows a vacuum has yet to reclaim
    bloat_ratio: float | None = None  # PostgreSQL: dead / (live + dead), the share a vacuum would reclaim
    sequential_scans: int | None = None
    index_scans: int | None = None
    last_vacuum: str | None = None  # the later of the manual and the automatic one, ISO 8601


@dataclass(frozen=True)
class IndexStats:
    name: str
    table: str
    bytes: int | None
    scans: int | None  # None where the dialect does not count index use (SQLite)


@dataclass(frozen=True)
class DatabaseStats:
    dialect: str
    size_bytes: int
    tables: list[TableStats] = field(default_factory=list)
    indexes: list[IndexStats] = field(default_factory=list)
    cache_hit_ratio: float | None = None  # PostgreSQL: heap blocks found in shared buffers
    wal_bytes: int | None = None  # SQLite: the write-ahead log's file
    connections: int = 0  # PostgreSQL: this database's server connections; SQLite: this process's pool
    pool_checked_out: int = 0  # this process's pooled connections in use now


def database_stats(db: Database) -> DatabaseStats:
    return _sqlite(db) if db.is_sqlite else _postgres(db)


_PG_TABLES = """
SELECT t.relname, CASE WHEN c.reltuples >= 0 THEN c.reltuples::bigint ELSE t.n_live_tup END, t.n_dead_tup,
       t.seq_scan, t.idx_scan, pg_total_relation_size(t.relid), greatest(t.last_vacuum, t.last_autovacuum)
FROM pg_stat_user_tables t JOIN pg_class c ON c.oid = t.relid
WHERE t.schemaname = current_schema() ORDER BY t.relname
"""
_PG_INDEXES = """
SELECT i.indexrelname, i.relname, pg_relation_size(i.indexrelid), i.idx_scan
FROM pg_stat_user_indexes i WHERE i.schemaname = current_schema() ORDER BY i.relname, i.indexrelname
"""
_PG_HITS = """
SELECT sum(heap_blks_hit)::float8 / nullif(sum(heap_blks_hit) + sum(heap_blks_read), 0)
FROM pg_statio_user_tables WHERE schemaname = current_schema()
"""


def _postgres(db: Database) -> DatabaseStats:
    with db.read() as s:
        tables = []
        for name, live, dead, seq, idx, size, vacuumed in s.execute(text(_PG_TABLES)):
            total = int(live or 0) + int(dead or 0)
            tables.append(
                TableStats(
                    name=name,
                    rows=int(live or 0),
                    bytes=int(size),
                    dead_rows=int(dead or 0),
                    bloat_ratio=round(int(dead or 0) / total, 4) if total else 0.0,
                    sequential_scans=int(seq or 0),
                    index_scans=int(idx or 0),
                    last_vacuum=vacuumed.isoformat() if vacuumed is not None else None,
                )
            )
        indexes = [
            IndexStats(name=n, table=t, bytes=int(b), scans=int(c or 0)) for n, t, b, c in s.execute(text(_PG_INDEXES))
        ]
        ratio = s.scalar(text(_PG_HITS))
        size = int(s.scalar(text("SELECT pg_database_size(current_database())")) or 0)
        connections = int(
            s.scalar(text("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()")) or 0
        )
    return DatabaseStats(
        dialect="postgresql",
        size_bytes=size,
        tables=tables,
        indexes=indexes,
        cache_hit_ratio=round(float(ratio), 4) if ratio is not None else None,
        connections=connections,
        pool_checked_out=_checked_out(db),
    )


def _sqlite(db: Database) -> DatabaseStats:
    path = Path(db.engine.url.database or "")
    with db.read() as s:
        names: list[tuple[str, str, str]] = []
        virtual: dict[str, str] = {}  # a virtual table's name -> its module (fts5, fts5vocab)
        for n, k, t, sql in s.execute(
            text(
                "SELECT name, type, tbl_name, sql FROM sqlite_schema WHERE type IN ('table', 'index') "
                "AND name NOT LIKE 'sqlite_%' ORDER BY name"
            )
        ):
            names.append((str(n), str(k), str(t)))
            found = re.search(r"USING\s+(\w+)", str(sql or ""), re.IGNORECASE)
            if found:
                virtual[str(n)] = found.group(1).lower()
        try:
            pages = {str(n): int(b) for n, b in s.execute(text("SELECT name, sum(pgsize) FROM dbstat GROUP BY name"))}
        except OperationalError:  # a SQLite built without the dbstat table: sizes unknown, not guessed
            pages = {}
        tables = []
        for name, kind, _ in names:
            if kind != "table" or virtual.get(name) == "fts5vocab" or _shadow_of(name, virtual) is not None:
                continue  # a vocabulary is a view of its index; FTS5's storage is counted with its table
            rows = int(s.scalar(text(f'SELECT count(*) FROM "{name}"')) or 0)
            size = pages.get(name)
            if virtual.get(name) == "fts5" and pages:
                size = sum(b for n, b in pages.items() if _shadow_of(n, virtual) == name)
            tables.append(TableStats(name=name, rows=rows, bytes=size))
        indexes = [
            IndexStats(name=name, table=table, bytes=pages.get(name), scans=None)
            for name, kind, table in names
            if kind == "index"
        ]
    wal = Path(f"{path}-wal")
    size = sum(p.stat().st_size for p in (path, wal) if p.exists())
    checked_out = _checked_out(db)
    return DatabaseStats(
        dialect="sqlite",
        size_bytes=size,
        tables=tables,
        indexes=indexes,
        wal_bytes=wal.stat().st_size if wal.exists() else 0,
        connections=checked_out,
        pool_checked_out=checked_out,
    )


_FTS5_SHADOWS = ("data", "idx", "docsize", "config", "content")


def _shadow_of(name: str, virtual: dict[str, str]) -> str | None:
    """The FTS5 table whose storage `name` is (x_data, x_idx, x_docsize, x_config, x_content), if any."""
    for table, module in virtual.items():
        if module == "fts5" and any(name == f"{table}_{part}" for part in _FTS5_SHADOWS):
            return table
    return None


def _checked_out(db: Database) -> int:
    checkedout = getattr(db.engine.pool, "checkedout", None)
    return int(checkedout()) if callable(checkedout) else 0


def database_size(db: Database) -> int:
    """The database's size in bytes (SQLite: its file and WAL), cheaply: for metrics and health snapshots."""
    if db.is_sqlite:
        path = Path(db.engine.url.database or "")
        return sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())
    with db.read() as s:
        return int(s.scalar(text("SELECT pg_database_size(current_database())")) or 0)
