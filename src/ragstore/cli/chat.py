"""`ragstore chat`: conversations, messages, feedback, context, message search and purge (issue 18).

Each command opens the store, calls one `store.chat` method and prints its typed result (`--json`: the same
JSON the HTTP API returns). Search and retention commands live in their own modules and register here.
"""

from __future__ import annotations

import typer

__all__ = ["app"]

app = typer.Typer(
    help="Conversations and messages of a chat service: create, add, show, search, purge.", no_args_is_help=True
)

# The command modules that add to this group (imported for their @app.command side effect).
from ragstore.cli import chat_retention, chat_search  # noqa: E402, F401
