"""`ragstore audit`: verify the tamper-evident audit log, list its rows, sign a checkpoint now.

`audit verify` exits 1 naming the first bad sequence number when the log was tampered with, so cron (and the
daily consistency check, which runs the same verification) can alert on it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

import typer

from ragstore.cli.common import (
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    JsonOpt,
    domain_errors,
    fail,
    opened_store,
    out,
    print_json,
    print_listing,
)

if TYPE_CHECKING:
    from ragstore.schemas import AuditEntryInfo

__all__ = ["app"]

app = typer.Typer(help="The tamper-evident audit log: verify the hash chain and its signed checkpoints, list rows.")


@app.command("verify")
def audit_verify(as_json: bool = JsonOpt) -> None:
    """Check every row's hash and link and every signed checkpoint; exit 1 naming the first bad sequence."""
    with opened_store(recover=False) as store, domain_errors():
        result = store.audit.verify()
    if as_json:
        print_json(result)
    elif result.ok:
        out.print(
            f"audit log intact: {result.rows_checked} rows (head {result.head_sequence}), "
            f"{result.checkpoints_checked} signed checkpoints",
            highlight=False,
        )
    else:
        out.print(
            f"audit log BROKEN at sequence {result.first_bad_sequence} ({result.problem}): {result.reason}",
            markup=False,
            highlight=False,
        )
    if not result.ok:
        raise typer.Exit(EXIT_FAILED)


@app.command("list")
def audit_list(
    actor: str | None = typer.Option(None, "--actor", help="Only this actor (key:ID, user:ID, cli:NAME, ...)."),
    action: str | None = typer.Option(None, "--action", help="Only this action (e.g. collection.delete, or key.*)."),
    since: str | None = typer.Option(None, "--since", help="Only rows from this time on (ISO 8601; UTC if no zone)."),
    limit: int = typer.Option(100, min=1, max=1000, help="How many rows, newest first."),
    as_json: bool = JsonOpt,
) -> None:
    """Audit rows, newest first: who did what to what, how it ended."""
    start = _parse_since(since)
    with opened_store(recover=False) as store, domain_errors():
        rows = store.audit.list(actor=actor, action=action, since=start, limit=limit)
    if as_json:
        print_json(rows)
        return

    def cells(e: AuditEntryInfo) -> list[str | None]:
        return [str(e.sequence), e.created_at.isoformat(), e.actor, e.action, e.target, e.outcome]

    print_listing(rows, ["seq", "time", "actor", "action", "target", "outcome"], cells, as_json=False)


@app.command("checkpoint")
def audit_checkpoint(as_json: bool = JsonOpt) -> None:
    """Sign the chain's head now with AUDIT_SIGNING_KEY (the server does it on its schedule too)."""
    with opened_store(recover=False) as store, domain_errors():
        made = store.audit.checkpoint()
    if as_json:
        print_json(made)
    else:
        out.print(f"checkpoint {made.id}: sequence {made.sequence}, head {made.head_hash[:16]}…", highlight=False)


def _parse_since(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        fail(
            f"--since {value!r} is not an ISO 8601 time (e.g. 2026-12-01 or 2026-12-01T12:00:00+09:00)", EXIT_BAD_INPUT
        )
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
