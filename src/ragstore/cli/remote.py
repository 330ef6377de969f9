"""Remote mode: `ragstore --url URL [--api-key-file F] COMMAND` runs a command against a server.

The commands that `ragstore.client` can serve open `store_or_client()` instead of `opened_store()`: the
facade when no URL is given, else a `RagStoreClient` with the same attributes and typed results, so each
command prints exactly what it prints locally. Every other command reaches `common.settings()` (to open the
local store, the database or the configuration), which refuses in remote mode with one line and exit 2
(`refuse_local`), so no command silently acts on a local store the user did not mean.

The key comes from --api-key-file (read, stripped; an empty or unreadable file is exit 2) or RAGSTORE_API_KEY;
it is never printed, and an error names the file, never its content.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ragstore.client import RagStoreClient
    from ragstore.service import RagStore

__all__ = [
    "Remote",
    "activate",
    "current_remote",
    "deactivate",
    "read_key_file",
    "refuse_local",
    "remote_mode",
    "store_or_client",
]

EXIT_BAD_INPUT = 2


@dataclass(frozen=True, slots=True)
class Remote:
    url: str
    api_key: str | None

    def __repr__(self) -> str:  # never the key
        return f"Remote({self.url!r})"


_remote: ContextVar[Remote | None] = ContextVar("ragstore_cli_remote", default=None)


def current_remote() -> Remote | None:
    return _remote.get()


def read_key_file(path: Path) -> str:
    """The key in `path`, stripped; exit 2 naming the file (not its content) when it is unreadable or empty."""
    from ragstore.cli.common import fail

    try:
        key = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        fail(f"--api-key-file {path}: cannot be read ({reason})", EXIT_BAD_INPUT)
    if not key:
        fail(f"--api-key-file {path}: the file is empty", EXIT_BAD_INPUT)
    if any(ch.isspace() for ch in key):
        fail(f"--api-key-file {path}: holds more than one word (a key has no spaces or line breaks)", EXIT_BAD_INPUT)
    return key


def remote_mode(url: str | None, key_file: Path | None, env_key: str | None) -> Remote | None:
    """The remote the global options name (None: local mode); exit 2 for a key without a URL or a bad URL."""
    from ragstore.cli.common import fail

    if url is None or not url.strip():
        if key_file is not None:
            fail("--api-key-file needs --url (or RAGSTORE_URL): a key is for a server", EXIT_BAD_INPUT)
        return None
    url = url.strip().rstrip("/")
    if not url.startswith(("http://", "https://")) or len(url) <= len("https://"):
        fail(f"--url must be an http:// or https:// URL, not {url!r}", EXIT_BAD_INPUT)
    key = read_key_file(key_file) if key_file is not None else (env_key or "").strip() or None
    return Remote(url, key)


def activate(remote: Remote | None) -> Token[Remote | None]:
    """Remote mode for the command being run; pair with `deactivate` when it ends (a program that runs the
    CLI in-process, a test, must not stay in remote mode afterwards)."""
    return _remote.set(remote)


def deactivate(token: Token[Remote | None]) -> None:
    _remote.reset(token)


def refuse_local() -> None:
    """Exit 2 with one line when a command that needs the local store runs in remote mode."""
    remote = current_remote()
    if remote is None:
        return
    from ragstore.cli.common import fail

    ctx = _current_context()
    command = ctx.command_path if ctx is not None else "this command"
    fail(f"`{command}` needs a local store: it cannot run against --url {remote.url}", EXIT_BAD_INPUT)


def _current_context() -> Any:
    """The running command's context, for its name. Typer carries its own copy of Click (and so its own
    context stack) since 0.20; the plain Click one is the fallback for an older Typer."""
    import importlib

    try:
        current = importlib.import_module("typer.main").get_current_context
    except AttributeError:  # pragma: no cover - an older Typer runs on Click itself
        current = importlib.import_module("click").get_current_context
    return current(silent=True)


@contextmanager
def store_or_client(**kwargs: Any) -> Iterator[RagStore | RagStoreClient]:
    """The facade (`opened_store(**kwargs)`) in local mode, a client of the server in remote mode; closed
    after the command, domain errors mapped to one line and their exit code either way."""
    from ragstore.cli.common import domain_errors, opened_store

    remote = current_remote()
    if remote is None:
        with opened_store(**kwargs) as store:
            yield store
        return
    from ragstore.client import RagStoreClient

    with domain_errors(), RagStoreClient(remote.url, remote.api_key) as client:
        yield client
