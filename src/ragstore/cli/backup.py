"""`ragstore backup`: one consistent point in time of the store, kept in RAGSTORE_BACKUP_REPOSITORY."""

from __future__ import annotations

import sys

import typer

from ragstore.cli.common import (
    JsonOpt,
    confirm_destructive,
    domain_errors,
    human_size,
    opened_store,
    out,
    print_json,
    settings,
    store_or_client,
)

__all__ = ["app"]

app = typer.Typer(
    help="Backups of the database and the vector index: create, list, verify, restore, prune.", no_args_is_help=True
)


@app.command("create")
def backup_create(
    kind: str = typer.Option(
        "incremental", "--kind", help="full (every block written anew), incremental, or snapshot (database only)."
    ),
    note: str | None = typer.Option(None, "--note", help="A note kept with the backup."),
    as_json: bool = JsonOpt,
) -> None:
    """Back up the store at one point in time into RAGSTORE_BACKUP_REPOSITORY."""
    with store_or_client() as store, domain_errors():
        made = store.backups.create(kind, note=note, trigger="cli")
    assert made is not None
    if as_json:
        print_json(made)
        return
    out.print(
        f"backup [bold]{made.id}[/] ({made.kind}): {made.documents} documents, {made.chunks} chunks, "
        f"{human_size(made.logical_bytes)} read, {human_size(made.stored_bytes)} stored, {made.seconds or 0:.1f} s"
    )


@app.command("list")
def backup_list(as_json: bool = JsonOpt) -> None:
    """Every complete backup in the repository, oldest first, with its size and when it was last verified."""
    from rich.table import Table

    with store_or_client(recover=False) as store, domain_errors():
        backups = store.backups.list()
    if as_json:
        print_json(backups)
        return
    table = Table("id", "kind", "created", "docs", "chunks", "size", "stored", "verified", "note")
    for b in backups:
        verified = b.verified_at or ("FAILED" if b.verify else "")
        table.add_row(
            b.id,
            b.kind,
            b.created_at,
            str(b.documents),
            str(b.chunks),
            human_size(b.logical_bytes),
            human_size(b.stored_bytes),
            verified or "",
            b.note or "",
        )
    out.print(table)


@app.command("status")
def backup_status(as_json: bool = JsonOpt) -> None:
    """What is running now, the newest backup, the schedule and the retention policy."""
    with store_or_client(recover=False) as store, domain_errors():
        status = store.backups.status()
    if as_json:
        print_json(status)
        return
    running = ", ".join(f"{r.action} {r.kind or ''} (run {r.id})".replace("  ", " ") for r in status.running)
    latest = status.latest
    out.print(f"repository: {status.repository}", highlight=False)
    out.print(f"running: {running or 'nothing'}", highlight=False)
    if latest is None:
        out.print("newest backup: none", highlight=False)
    else:
        out.print(f"newest backup: {latest.id} ({latest.kind}, {latest.created_at})", highlight=False)
    out.print(f"schedule: {status.schedule.model_dump()}", highlight=False)
    out.print(f"retention: {status.retention.model_dump()}", highlight=False)


@app.command("show")
def backup_show(
    backup_id: str = typer.Argument(..., help="A backup id from `backup list`."),
    as_json: bool = typer.Option(False, "--json", help="Accepted for symmetry: the manifest is printed as JSON."),
) -> None:
    """One backup's manifest: versions, collections with their counts, files and checksums, timings (JSON)."""
    with opened_store(recover=False) as store, domain_errors():
        print_json(store.backups.show(backup_id))


@app.command("verify")
def backup_verify(
    backup_id: str | None = typer.Argument(None, help="Default: the newest backup."),
    every: bool = typer.Option(False, "--all", help="Verify every backup in the repository."),
    as_json: bool = JsonOpt,
) -> None:
    """Re-read every block, check every checksum, decrypt, restore into a temporary folder and check it."""
    with store_or_client() as store, domain_errors():
        results = store.backups.verify(backup_id, every=every)
    if as_json:
        print_json(results)
        return
    for r in results:
        db_check = r.integrity_check or f"pg_restore --list: {r.pg_restore_list} entries"
        out.print(
            f"backup {r.backup_id}: ok ({r.files} files, {r.blocks} blocks, {human_size(r.bytes or 0)}; "
            f"{db_check}; counts {r.counts}; {r.total_s or 0:.1f} s)"
        )


@app.command("restore")
def backup_restore(
    backup_id: str = typer.Argument(..., help="A backup id from `backup list`."),
    to: str | None = typer.Option(
        None, "--to", help="Restore into this new folder (SQLite) or postgresql:// URL, leaving the live store alone."
    ),
    yes: bool = typer.Option(False, "--yes", "-y", help="Replace the live store without asking."),
    as_json: bool = JsonOpt,
) -> None:
    """Restore beside the live store, verify, then swap it in (asks first: exit 3 unconfirmed); or write to --to."""
    from ragstore.service import restore_backup

    cfg = settings()
    if to is None:
        confirm_destructive(
            f"Replace the live store ({cfg.sqlalchemy_url.split('?')[0]}) with backup {backup_id}? "
            "Stop the server and workers first.",
            yes,
        )
    with domain_errors():
        result = restore_backup(cfg, backup_id, to=to)
    if as_json:
        print_json(result)
        return
    where = "the live store" if result.live else result.target
    out.print(
        f"restored backup [bold]{backup_id}[/] into {where} in {result.total_s:.1f} s "
        f"(index: {result.index}); consistency check: {result.consistency.problems} problems"
    )


@app.command("prune")
def backup_prune(
    dry_run: bool = typer.Option(False, "--dry-run", help="Say what would be removed; remove nothing."),
    as_json: bool = JsonOpt,
) -> None:
    """Apply the retention policy (RAGSTORE_BACKUP_KEEP_*) and delete blocks no kept backup needs."""
    with opened_store() as store, domain_errors():
        result = store.backups.prune(dry_run=dry_run)
    if as_json:
        print_json(result)
        return
    verb = "would remove" if dry_run else "removed"
    out.print(
        f"kept {len(result.kept)} backups; {verb} {len(result.removed_backups)} backups and "
        f"{result.removed_blocks} blocks ({human_size(result.freed_bytes)} freed)"
    )


@app.command("keygen")
def backup_keygen(as_json: bool = JsonOpt) -> None:
    """Print a new random BACKUP_ENCRYPTION_KEY (keep a copy away from the backups)."""
    from ragstore.backup import generate_key

    key = generate_key()
    if as_json:
        print_json({"key": key})
    else:
        sys.stdout.write(key + "\n")
