"""`ragstore chat`: conversations, messages, feedback, context, message search and purge (issue 18).

Each command opens the store, calls one `store.chat` method and prints its typed result (`--json`: the same
JSON the HTTP API returns). Search and retention commands live in their own modules and register here.
The CLI acts as the local operator, who sees every conversation (docs/chat.md, "Ownership").
"""

from __future__ import annotations

import json
from typing import Any

import typer

from ragstore.cli.common import (
    EXIT_BAD_INPUT,
    JsonOpt,
    confirm_destructive,
    domain_errors,
    fail,
    out,
    plain,
    print_json,
    print_listing,
    store_or_client,
)

__all__ = ["app"]

app: typer.Typer = typer.Typer(
    help="Conversations and messages of a chat service: create, add, show, search, purge.", no_args_is_help=True
)

ROLES = ("user", "assistant", "system", "tool")


def _model(model: type[Any], fields: dict[str, Any]) -> Any:
    """The request model from the command's options; exit 2 with one line naming what is wrong."""
    from pydantic import ValidationError

    try:
        return model.model_validate({k: v for k, v in fields.items() if v is not None})
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'input'}: {e['msg']}" for e in exc.errors())
        fail(problems, EXIT_BAD_INPUT)


def _show_messages(messages: list[Any]) -> None:
    for m in messages:
        parent = f" (parent {m.parent_id})" if m.parent_id else ""
        out.print(f"[bold]#{m.id} {m.role}[/]{parent}: {plain(m.content)}", highlight=False, soft_wrap=True)


@app.command("new")
def new(
    title: str = typer.Option("", "--title", help="The conversation's title."),
    user: str | None = typer.Option(None, "--user", help="The owning user (id or e-mail)."),
    collection: list[str] = typer.Option([], "-c", "--collection", help="A collection it searches (repeatable)."),
    end_user: str | None = typer.Option(None, "--end-user", help="An anonymous end user's id."),
    as_json: bool = JsonOpt,
) -> None:
    """Start a conversation and print its id."""
    from ragstore.schemas.chat import ConversationCreate

    spec = _model(
        ConversationCreate, {"title": title, "user": user, "collections": collection, "end_user_id": end_user}
    )
    with store_or_client(recover=False) as store, domain_errors():
        made = store.chat.create(spec)
    if as_json:
        print_json(made)
    else:
        out.print(made.id)


@app.command("add")
def add(
    conversation_id: str = typer.Argument(..., help="The conversation's id."),
    text: str = typer.Argument(..., help="The message's text."),
    role: str = typer.Option(..., "--role", help="user, assistant, system or tool."),
    parent: int | None = typer.Option(None, "--parent", min=1, help="The parent message (default: the active leaf)."),
    references: str | None = typer.Option(
        None, "--references", help='The cited chunks as JSON: [{"chunk_id", "document_id", "content_hash", "score"}].'
    ),
    agent: str | None = typer.Option(None, "--agent", help="The agent that produced it."),
    as_json: bool = JsonOpt,
) -> None:
    """Add a message; it becomes the active leaf of the conversation."""
    from ragstore.schemas.chat import MessageCreate

    if role not in ROLES:
        fail(f"--role must be one of {', '.join(ROLES)}, not {role!r}", EXIT_BAD_INPUT)
    cited: Any = None
    if references is not None:
        try:
            cited = json.loads(references)
        except ValueError as exc:
            fail(f"--references is not JSON: {exc}", EXIT_BAD_INPUT)
        if not isinstance(cited, list):
            fail("--references must be a JSON list of references", EXIT_BAD_INPUT)
    spec = _model(
        MessageCreate,
        {"role": role, "content": text, "parent_id": parent, "references": cited, "agent_used": agent},
    )
    with store_or_client(recover=False) as store, domain_errors():
        added = store.chat.add(conversation_id, spec)
    if as_json:
        print_json(added)
    else:
        out.print(f"message {added.id} ({added.token_count} tokens)")


@app.command("show")
def show(
    conversation_id: str = typer.Argument(..., help="The conversation's id."),
    all_branches: bool = typer.Option(False, "--all-branches", help="Every message of every branch."),
    limit: int = typer.Option(1000, "--limit", min=1, max=10_000, help="At most this many (the newest)."),
    as_json: bool = JsonOpt,
) -> None:
    """The conversation and the messages of its active branch, oldest first."""
    with store_or_client(recover=False) as store, domain_errors():
        detail = store.chat.show(conversation_id, all_branches=all_branches, limit=limit)
    if as_json:
        print_json(detail)
        return
    c = detail.conversation
    out.print(f"{c.id} {plain(c.title)!s} - {c.message_count} messages, version {c.version}", highlight=False)
    if detail.truncated:
        out.print(f"(only the newest {limit} messages)")
    _show_messages(detail.messages)


@app.command("list")
def list_conversations(
    user: str | None = typer.Option(None, "--user", help="Only this owner (id or e-mail)."),
    end_user: str | None = typer.Option(None, "--end-user", help="Only this end user's."),
    collection: str | None = typer.Option(None, "-c", "--collection", help="Only those searching it."),
    limit: int = typer.Option(50, "--limit", min=1, max=200, help="At most this many."),
    cursor: str | None = typer.Option(None, "--cursor", help="The next page (`next_cursor` of the last)."),
    as_json: bool = JsonOpt,
) -> None:
    """Conversations, newest activity first."""
    with store_or_client(recover=False) as store, domain_errors():
        page = store.chat.list(user=user, end_user_id=end_user, collection=collection, limit=limit, cursor=cursor)
    if as_json:
        print_json(page)
        return
    print_listing(
        page.conversations,
        ["id", "title", "owner", "messages", "updated"],
        lambda c: [
            c.id,
            c.title,
            str(c.owner_user_id or c.end_user_id or "-"),
            str(c.message_count),
            c.updated_at.isoformat(),
        ],
        as_json=False,
    )
    if page.next_cursor:
        out.print(f"more: --cursor {page.next_cursor}")


@app.command("context")
def context(
    conversation_id: str = typer.Argument(..., help="The conversation's id."),
    budget: int = typer.Option(..., "--budget", min=1, max=1_000_000, help="The token budget."),
    as_json: bool = JsonOpt,
) -> None:
    """The context of the next turn: summary and newest messages within the budget, citations resolved now."""
    with store_or_client(recover=False) as store, domain_errors():
        assembled = store.chat.context(conversation_id, budget)
    if as_json:
        print_json(assembled)
        return
    more = ", older messages left out" if assembled.truncated else ""
    out.print(f"{assembled.tokens} of {budget} tokens, {len(assembled.messages)} messages{more}")
    if assembled.summary:
        out.print(f"summary: {plain(assembled.summary)}", highlight=False)
    _show_messages(assembled.messages)
    for ref in assembled.references:
        out.print(f"  message {ref.message_id} cites chunk {ref.chunk_id} (document {ref.document_id}): {ref.state}")


@app.command("feedback")
def feedback(
    message_id: int = typer.Argument(..., min=1, help="The message's id."),
    rating: int = typer.Option(..., "--rating", help="thumbs: -1 or 1; stars: 1 to 5."),
    scale: str = typer.Option("thumbs", "--scale", help="thumbs or stars."),
    comment: str = typer.Option("", "--comment", help="Why."),
    source: str = typer.Option("end_user", "--source", help="end_user or reviewer."),
    as_json: bool = JsonOpt,
) -> None:
    """Rate a message; a second rating from the same source replaces the first."""
    from ragstore.schemas.chat import FeedbackInput

    spec = _model(FeedbackInput, {"rating": rating, "scale": scale, "comment": comment, "source": source})
    with store_or_client(recover=False) as store, domain_errors():
        rated = store.chat.feedback(message_id, spec)
    if as_json:
        print_json(rated)
    else:
        out.print(f"message {rated.message_id}: {rated.rating} ({rated.scale}, {rated.source})")


@app.command("update")
def update(
    conversation_id: str = typer.Argument(..., help="The conversation's id."),
    version: int = typer.Option(..., "--version", min=1, help="The version read (a stale one is refused)."),
    title: str | None = typer.Option(None, "--title", help="A new title."),
    summary: str | None = typer.Option(None, "--summary", help="A new running summary."),
    active: bool | None = typer.Option(None, "--active/--inactive", help="Mark active or inactive."),
    as_json: bool = JsonOpt,
) -> None:
    """Change a conversation's title, summary or state at the version you read."""
    from ragstore.schemas.chat import ConversationUpdate

    spec = _model(ConversationUpdate, {"version": version, "title": title, "summary": summary, "is_active": active})
    with store_or_client(recover=False) as store, domain_errors():
        changed = store.chat.update(conversation_id, spec)
    if as_json:
        print_json(changed)
    else:
        out.print(f"{changed.id}: version {changed.version}")


@app.command("branch")
def branch(
    conversation_id: str = typer.Argument(..., help="The conversation's id."),
    message_id: int = typer.Argument(..., min=1, help="The leaf of the branch to switch to."),
    as_json: bool = JsonOpt,
) -> None:
    """Switch the conversation to the branch ending at MESSAGE_ID."""
    with store_or_client(recover=False) as store, domain_errors():
        changed = store.chat.branch(conversation_id, message_id)
    if as_json:
        print_json(changed)
    else:
        out.print(f"{changed.id}: active message {changed.active_message_id}, version {changed.version}")


@app.command("delete")
def delete(
    conversation_id: str = typer.Argument(..., help="The conversation's id."),
    yes: bool = typer.Option(False, "-y", "--yes", help="Do not ask."),
    as_json: bool = JsonOpt,
) -> None:
    """Delete a conversation (soft: hidden from every read at once; `chat purge` removes it for good)."""
    confirm_destructive(f"Delete conversation {conversation_id}?", yes)
    with store_or_client(recover=False) as store, domain_errors():
        store.chat.delete(conversation_id)
    if as_json:
        print_json({"deleted": conversation_id})
    else:
        out.print(f"deleted {conversation_id}")


# The command modules that add to this group (imported for their @app.command side effect).
from ragstore.cli import chat_retention, chat_search  # noqa: E402, F401
