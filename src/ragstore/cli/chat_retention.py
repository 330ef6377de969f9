"""`ragstore chat purge`: remove soft-deleted, expired and (with --older-than) idle conversations for good."""

from __future__ import annotations

import typer

from ragstore.cli import chat as chat_cli
from ragstore.cli.common import JsonOpt, domain_errors, fail, out, print_json, store_or_client
from ragstore.cli.keys import parse_duration

__all__ = ["chat_purge"]


@chat_cli.app.command("purge")
def chat_purge(
    older_than: str | None = typer.Option(
        None, "--older-than", help="Also remove conversations idle this long: 30m, 12h, 90d or 2w."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Count what would go; remove nothing."),
    as_json: bool = JsonOpt,
) -> None:
    """Remove soft-deleted and expired conversations (and idle ones with --older-than) with their messages."""
    age = None
    if older_than is not None:
        try:
            age = parse_duration(older_than)
        except ValueError as exc:
            fail(str(exc).replace("--expires-in", "--older-than"), 2)
    with store_or_client(recover=False) as store, domain_errors():
        report = store.chat.purge(age, dry_run=dry_run)
    if as_json:
        print_json(report)
        return
    verb = "would remove" if dry_run else "removed"
    out.print(f"{verb} {report.conversations} conversations ({report.messages} messages)")
