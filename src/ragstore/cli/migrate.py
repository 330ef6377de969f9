"""`ragstore migrate`: the Alembic schema, by hand (`ragstore init` upgrades to head on its own)."""

from __future__ import annotations

import typer

from ragstore.cli.common import JsonOpt, YesOpt, confirm_destructive, migrator, out, print_json, settings

__all__ = ["app"]

app = typer.Typer(help="Database schema migrations (Alembic).", no_args_is_help=True)


@app.command("status")
def migrate_status(as_json: bool = JsonOpt) -> None:
    """Current and head revision: is the schema up to date (`migrate list` shows each revision)."""
    with migrator() as m:
        m.verify_checksums()
        status = m.status()
    if as_json:
        print_json(
            {
                "current": status.current,
                "head": status.head,
                "up_to_date": status.up_to_date,
                "revisions": [r.__dict__ for r in status.revisions],
            }
        )
        return
    state = "up to date" if status.up_to_date else "behind: run `ragstore migrate upgrade`"
    out.print(f"current: {status.current or 'nothing'}   head: {status.head}   {state}")


@app.command("list")
def migrate_list(as_json: bool = JsonOpt) -> None:
    """Every revision, oldest first, and whether it is applied."""
    with migrator() as m:
        m.verify_checksums()
        status = m.status()
    if as_json:
        print_json([r.__dict__ for r in status.revisions])
        return
    for r in status.revisions:
        out.print(
            f"  [{'x' if r.applied else ' '}] {r.revision}  {r.message}  ({r.filename})", markup=False, highlight=False
        )


@app.command("upgrade")
def migrate_upgrade(
    revision: str = typer.Argument("head", help="Target revision (default head)."),
    as_json: bool = JsonOpt,
) -> None:
    """Upgrade the schema to REVISION (default head)."""
    with migrator() as m:
        m.verify_checksums()
        before = m.status().current
        now = m.upgrade(revision)
    _record("migration.upgrade", before, now)
    if as_json:
        print_json({"revision": now})
    else:
        out.print(f"database at revision {now}")


@app.command("downgrade")
def migrate_downgrade(
    revision: str = typer.Argument(..., help="Target revision, or 'base' for an empty schema."),
    yes: bool = YesOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Downgrade the schema to REVISION (data in dropped tables is lost; asks first; exit 3 if not confirmed)."""
    confirm_destructive(f"Downgrade the database to {revision}? Dropped tables lose their data.", yes)
    with migrator() as m:
        m.verify_checksums()
        before = m.status().current
        now = m.downgrade(revision)
    _record("migration.downgrade", before, now)
    if as_json:
        print_json({"revision": now or "base"})
    else:
        out.print(f"database at revision {now or 'base'}")


def _record(action: str, before: str | None, now: str | None) -> None:
    """Record the migration in the audit log, after it ran: the log's table exists only from revision 0010
    on, so an upgrade from before it is recorded by the schema that has it, and a downgrade below it is not
    (the table is gone with its rows; a backup keeps them)."""
    if before == now:
        return
    from ragstore.security.audit_service import record_beside

    record_beside(settings(), action, target=now or "base", previous=before or "base")
