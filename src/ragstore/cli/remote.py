"""Remote mode: `ragstore --url URL [--api-key-file F] COMMAND` runs a command against a server.

The commands that `ragstore.client` can serve open `common.store_or_client()` instead of `opened_store()`:
the facade when no URL is given, else a `RagStoreClient` with the same attributes and typed results, so each
command prints exactly what it prints locally. Every other command reaches `common.settings()` (to open the
local store, the database or the configuration), which refuses in remote mode with one line and exit 2
(`local_only_message`), so no command silently acts on a local store the user did not mean.

The key comes from --api-key-file (read, stripped; an empty or unreadable file is exit 2) or RAGSTORE_API_KEY;
it is never printed, and an error names the file, never its content. This module only decides; `common`
prints and exits (it imports this module, never the other way round).
"""

from __future__ import annotations

import importlib
from contextvars import ContextVar, Token
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "BadRemote",
    "Remote",
    "activate",
    "current_remote",
    "deactivate",
    "local_only_message",
    "read_key_file",
    "remote_mode",
]


class BadRemote(Exception):
    """The global options cannot be used as given (exit 2, the message says why; it never holds the key)."""


@dataclass(frozen=True, slots=True)
class Remote:
    url: str
    api_key: str | None

    def __repr__(self) -> str:  # never the key
        return f"Remote({self.url!r})"


_remote: ContextVar[Remote | None] = ContextVar("ragstore_cli_remote", default=None)


def current_remote() -> Remote | None:
    return _remote.get()


def activate(remote: Remote | None) -> Token[Remote | None]:
    """Remote mode for the command being run; pair with `deactivate` when it ends (a program that runs the
    CLI in-process, a test, must not stay in remote mode afterwards)."""
    return _remote.set(remote)


def deactivate(token: Token[Remote | None]) -> None:
    _remote.reset(token)


def read_key_file(path: Path) -> str:
    """The key in `path`, stripped; BadRemote naming the file (never its content) if unreadable or empty."""
    try:
        key = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise BadRemote(f"--api-key-file {path}: cannot be read ({reason})") from None
    if not key:
        raise BadRemote(f"--api-key-file {path}: the file is empty")
    if any(ch.isspace() for ch in key):
        raise BadRemote(f"--api-key-file {path}: holds more than one word (a key has no spaces or line breaks)")
    return key


def remote_mode(url: str | None, key_file: Path | None, env_key: str | None) -> Remote | None:
    """The remote the global options name (None: local mode)."""
    if url is None or not url.strip():
        if key_file is not None:
            raise BadRemote("--api-key-file needs --url (or RAGSTORE_URL): a key is for a server")
        return None
    url = url.strip().rstrip("/")
    if not url.startswith(("http://", "https://")) or len(url) <= len("https://"):
        raise BadRemote(f"--url must be an http:// or https:// URL, not {url!r}")
    key = read_key_file(key_file) if key_file is not None else (env_key or "").strip() or None
    return Remote(url, key)


def local_only_message() -> str | None:
    """In remote mode, the line a command that needs the local store exits with; None in local mode."""
    remote = current_remote()
    if remote is None:
        return None
    ctx = _current_context()
    command = ctx.command_path if ctx is not None else "this command"
    return f"`{command}` needs a local store: it cannot run against --url {remote.url}"


def _current_context() -> Any:
    """The running command's context, for its name. Typer carries its own copy of Click (and so its own
    context stack) since 0.20; the plain Click one is the fallback for an older Typer."""
    try:
        current = importlib.import_module("typer.main").get_current_context
    except AttributeError:  # pragma: no cover - an older Typer runs on Click itself
        current = importlib.import_module("click").get_current_context
    return current(silent=True)
