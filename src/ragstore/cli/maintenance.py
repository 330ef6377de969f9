"""`ragstore maintenance optimize|cleanup`: the database kept in shape (runtime/maintenance.py says what each does)."""

from __future__ import annotations

from typing import Literal

import typer

from ragstore.cli.common import JsonOpt, domain_errors, opened_store, out, print_json

__all__ = ["app"]

app = typer.Typer(help="Keep the database in shape: optimize (planner, indexes, WAL) and cleanup (old rows).")
DryRunOpt = typer.Option(False, "--dry-run", help="Count what would be done; change nothing.")


@app.command("optimize")
def optimize(dry_run: bool = DryRunOpt, as_json: bool = JsonOpt) -> None:
    """SQLite: ANALYZE, PRAGMA optimize, FTS5 merge, incremental vacuum, WAL checkpoint. PostgreSQL: VACUUM
    (ANALYZE) and REINDEX CONCURRENTLY of bloated tables. Recorded in the run ledger and audited."""
    _run("optimize", dry_run, as_json)


@app.command("cleanup")
def cleanup(dry_run: bool = DryRunOpt, as_json: bool = JsonOpt) -> None:
    """Expired sessions; usage, query-log and health rows past retention; finished outbox operations; dead jobs
    older than 30 days. Recorded in the run ledger and audited."""
    _run("cleanup", dry_run, as_json)


def _run(action: Literal["optimize", "cleanup"], dry_run: bool, as_json: bool) -> None:
    from dataclasses import asdict

    from rich.table import Table

    from ragstore.runtime.maintenance import run_maintenance

    with opened_store(recover=False) as store, domain_errors():
        result = run_maintenance(store, action, dry_run=dry_run, trigger="cli")
    assert result is not None  # no slot: never refused
    if as_json:
        print_json(asdict(result))
        return
    table = Table(title=f"maintenance {action}{' (dry run)' if dry_run else ''}: run {result.run_id}")
    for column in ("step", "count", "what"):
        table.add_column(column, justify="right" if column == "count" else "left")
    for step in result.steps:
        table.add_row(step.name, "-" if step.count is None else f"{step.count:,}", step.note)
    out.print(table)
