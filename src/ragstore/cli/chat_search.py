"""`ragstore chat search`: full-text search over messages, Korean-aware, with highlighted passages; and
`ragstore chat relex`, which analyses the messages' terms again after the analyzer changed."""

from __future__ import annotations

import html
import re
from datetime import datetime

import typer

from ragstore.cli import chat as chat_cli
from ragstore.cli.common import (
    JsonOpt,
    domain_errors,
    fail,
    out,
    print_json,
    printable,
    progress_bar,
    store_or_client,
)
from ragstore.valid_text import ascii_digits

__all__ = ["chat_relex", "chat_search"]

ROLES = ("user", "assistant", "system", "tool")


def _when(value: str | None, option: str) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        fail(f"{option} {value!r} is not an ISO 8601 date or time (2026-12-05 or 2026-12-05T10:00:00+09:00)", 2)


def _terminal(passage: str) -> str:
    """The HTML highlight as rich markup: the text unescaped and made printable, each <mark> in bold."""
    pieces = re.split(r"(</?mark>)", passage)
    shown = {"<mark>": "[bold]", "</mark>": "[/bold]"}
    return "".join(shown.get(piece) or printable(html.unescape(piece)) for piece in pieces)


@chat_cli.app.command("search")
def chat_search(
    query: str = typer.Argument(..., help="The words to find (Korean or English)."),
    user: str | None = typer.Option(None, "--user", help="Only conversations of this user (id or e-mail)."),
    conversation: str | None = typer.Option(None, "--conversation", help="Only this conversation."),
    role: str | None = typer.Option(None, "--role", help="Only messages of this role: user, assistant, system, tool."),
    since: str | None = typer.Option(None, "--since", help="Only messages at or after this time (ISO 8601)."),
    until: str | None = typer.Option(None, "--until", help="Only messages before this time (ISO 8601)."),
    k: int = typer.Option(10, "-k", "--k", min=1, max=100, help="How many messages."),
    as_json: bool = JsonOpt,
) -> None:
    """Find messages by their words, best first, each with the matching passage highlighted."""
    if role is not None and role not in ROLES:
        fail(f"--role {role!r} is not one of {', '.join(ROLES)}", 2)
    start, end = _when(since, "--since"), _when(until, "--until")
    with store_or_client(recover=False) as store, domain_errors():
        result = store.chat.search(
            query,
            k=k,
            user=int(user) if user is not None and ascii_digits(user) else user,
            conversation_id=conversation,
            role=role,  # type: ignore[arg-type]
            since=start,
            until=end,
        )
    if as_json:
        print_json(result)
        return
    if not result.hits:
        out.print("no message matches")
        return
    for hit in result.hits:
        passage = _terminal(hit.highlight)
        out.print(f"{hit.conversation_id} #{hit.message_id} {hit.role} ({hit.score:.3f}): {passage}", highlight=False)


@chat_cli.app.command("relex")
def chat_relex(as_json: bool = JsonOpt) -> None:
    """Analyse every message's search terms again with the configured analyzer (RAGSTORE_LEXICAL_ANALYZER).

    A store does this by itself when it opens with another analyzer than the one that built the terms."""
    with (
        store_or_client(recover=False) as store,
        domain_errors(),
        progress_bar("analysing", disable=as_json) as bar,
    ):
        task = bar.add_task("analysing", total=None)
        report = store.chat.relex(progress=lambda done, total: bar.update(task, completed=done, total=total))
    if as_json:
        print_json(report)
        return
    out.print(f"{report.messages_analysed} messages analysed with {report.analyzer}")
