"""`ragstore db`: administration of the relational store itself (statistics, PostgreSQL roles), beside the store."""

from __future__ import annotations

import typer

from ragstore.cli.common import JsonOpt, domain_errors, out, print_json, settings

__all__ = ["app"]

app = typer.Typer(help="Relational-store administration: statistics, PostgreSQL roles.", no_args_is_help=True)


@app.command("grant-readonly")
def db_grant_readonly(
    role: str = typer.Argument(..., help="Role to create (if missing) and grant read access to."),
    login: bool = typer.Option(
        False, "--login", help="Create the role with LOGIN (default NOLOGIN: grant it to users)."
    ),
    as_json: bool = JsonOpt,
) -> None:
    """Create a read-only PostgreSQL role for reports: SELECT on every table and reporting view, nothing else."""
    from ragstore.db.engine import Database
    from ragstore.db.roles import grant_readonly

    with domain_errors():
        db = Database(settings())
        try:
            result = grant_readonly(db.engine, role, login=login)
        finally:
            db.dispose()
    if as_json:
        print_json(result)
        return
    created = "created and granted" if result["created"] == "yes" else "granted"
    out.print(f"role {role} {created} read-only access to {result['database']}.{result['schema']}")


@app.command("stats")
def db_stats(as_json: bool = JsonOpt) -> None:
    """Per table and index: size, rows and use; cache hit ratio, dead rows and bloat (PostgreSQL), WAL size
    (SQLite), connections. Reads only; safe on a running store."""
    from dataclasses import asdict

    from rich.table import Table

    from ragstore.db.engine import Database
    from ragstore.db.stats import database_stats

    with domain_errors():
        db = Database(settings())
        try:
            stats = database_stats(db)
        finally:
            db.dispose()
    if as_json:
        print_json(asdict(stats))
        return
    postgres = stats.dialect == "postgresql"  # SQLite counts no dead rows, scans or vacuums: no such columns
    columns = ["table", "rows", "size"] + (["dead rows", "bloat", "seq scans", "index scans", "last vacuum"] * postgres)
    tables = Table(title=f"{stats.dialect}: {_size(stats.size_bytes)} in all")
    for column in columns:
        tables.add_column(column, justify="left" if column in ("table", "last vacuum") else "right")
    for t in sorted(stats.tables, key=lambda t: -(t.bytes or 0)):
        cells = [t.name, f"{t.rows:,}", _size(t.bytes)]
        if postgres:
            cells += [
                _count(t.dead_rows),
                f"{t.bloat_ratio:.1%}" if t.bloat_ratio is not None else "-",
                _count(t.sequential_scans),
                _count(t.index_scans),
                t.last_vacuum or "-",
            ]
        tables.add_row(*cells)
    out.print(tables)
    indexes = Table(title="indexes" + (" (scans: how often a query used it)" if postgres else ""))
    for column in ["index", "table", "size"] + ["scans"] * postgres:
        indexes.add_column(column, justify="left" if column in ("index", "table") else "right")
    for i in sorted(stats.indexes, key=lambda i: -(i.bytes or 0)):
        indexes.add_row(i.name, i.table, _size(i.bytes), *([_count(i.scans)] * postgres))
    out.print(indexes)
    facts = [f"connections {stats.connections} (this process's pool: {stats.pool_checked_out} in use)"]
    if stats.cache_hit_ratio is not None:
        facts.append(f"cache hit ratio {stats.cache_hit_ratio:.2%}")
    if stats.wal_bytes is not None:
        facts.append(f"WAL {_size(stats.wal_bytes)}")
    out.print("; ".join(facts))


@app.command("slow")
def db_slow(
    limit: int = typer.Option(20, "--limit", min=1, max=1000, help="At most this many statements."),
    as_json: bool = JsonOpt,
) -> None:
    """Statements slower than RAGSTORE_SLOW_QUERY_MS by fingerprint (their values removed), most total time
    first: how often, in all, on average and at most. A server adds its own each minute and when it stops."""
    from dataclasses import asdict

    from rich.table import Table

    from ragstore.db.engine import Database
    from ragstore.db.slow import read_slow

    with domain_errors():
        db = Database(settings())
        try:
            with db.read() as s:
                found = read_slow(s, limit)
        finally:
            db.dispose()
    if as_json:
        print_json([asdict(f) for f in found])
        return
    table = Table(title=f"slow statements ({len(found)})")
    for column in ("statement", "count", "total ms", "mean ms", "max ms", "last seen"):
        table.add_column(column, justify="left" if column in ("statement", "last seen") else "right")
    for f in found:
        table.add_row(
            f.statement[:300],
            f"{f.count:,}",
            f"{f.total_ms:,.0f}",
            f"{f.mean_ms:,.1f}",
            f"{f.max_ms:,.1f}",
            f.last_seen.strftime("%Y-%m-%d %H:%M"),
        )
    out.print(table)
    if not found:
        out.print("none recorded: a server records statements slower than RAGSTORE_SLOW_QUERY_MS")


def _size(value: int | None) -> str:
    if value is None:
        return "-"
    size = float(value)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:,.0f} {unit}" if unit == "B" else f"{size:,.1f} {unit}"
        size /= 1024
    return f"{size:,.1f} TB"


def _count(value: int | None) -> str:
    return f"{value:,}" if value is not None else "-"
