"""What every command module shares: consoles, exit codes, opening the store, JSON output, common options.

Kept light on purpose: `ragstore --help` imports every command module, so nothing here may import the
facade, the database layer or a model at import time; those are imported inside the functions that need
them.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import typer
from rich.console import Console

from ragstore.errors import RagstoreError

if TYPE_CHECKING:
    from contextvars import Token
    from pathlib import Path

    from rich.progress import Progress

    from ragstore.cli.remote import Remote
    from ragstore.client import RagStoreClient
    from ragstore.config import Settings
    from ragstore.migrations import Migrator
    from ragstore.service import RagStore

__all__ = [
    "EXIT_BAD_INPUT",
    "EXIT_FAILED",
    "EXIT_NOT_CONFIRMED",
    "CollectionOpt",
    "JsonOpt",
    "OptionalCollectionOpt",
    "YesOpt",
    "check_data_dir",
    "confirm_destructive",
    "domain_errors",
    "err",
    "exit_code_for",
    "fail",
    "human_size",
    "migrator",
    "opened_store",
    "out",
    "plain",
    "print_json",
    "print_listing",
    "printable",
    "progress_bar",
    "settings",
    "start_remote_mode",
    "stdin_is_terminal",
    "store_or_client",
]

T = TypeVar("T")

out = Console()
err = Console(stderr=True)

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
# A destructive command that was not confirmed: no --yes and stdin not a terminal, or the answer was no.
# Its own code, so a script can tell "nothing was done because nobody said yes" from a failure or bad input.
EXIT_NOT_CONFIRMED = 3


def exit_code_for(exc: RagstoreError) -> int:
    """The error's category decides (`ragstore.errors`), so the CLI and the API can never disagree."""
    return exc.exit_code


def plain(value: object) -> str:
    """Stored text (a title, a chunk, a query) as rich prints it literally: its brackets are not markup (a
    title `[/b]` would fail the print), and lone surrogates show as `\\udcff` escapes rather than failing."""
    from rich.markup import escape

    return escape(str(value).encode("utf-8", "backslashreplace").decode("utf-8"))


def printable(text: str) -> str:
    """A message as `plain` prints it, with its secrets masked."""
    from ragstore.secrets_mask import mask

    return plain(mask(text))


def fail(message: str, code: int) -> NoReturn:
    """One line on stderr (a library's multi-line message is joined), then the exit code."""
    line = " ".join(part.strip() for part in message.splitlines() if part.strip())
    err.print(f"[bold red]error:[/] {printable(line)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


@contextmanager
def domain_errors() -> Iterator[None]:
    """Turn ragstore errors into one line on stderr and the exit code for their kind."""
    try:
        yield
    except RagstoreError as exc:
        fail(exc.message, exit_code_for(exc))


def check_data_dir(cfg: Settings) -> None:
    """RAGSTORE_DATA_DIR made, or one line saying why it cannot be, before anything tries to write in it.

    On PostgreSQL a missing data dir is left alone: a container may run migrations or a worker over a
    read-only working directory, and whatever needs the folder (an embedded index) makes it then."""
    if cfg.is_sqlite or cfg.data_dir.exists():
        cfg.make_data_dir()


def settings() -> Settings:
    """The local configuration; in remote mode (`--url`) a command that needs it exits 2 (cli/remote.py)."""
    from ragstore.cli.remote import local_only_message
    from ragstore.config import load_settings

    refused = local_only_message()
    if refused is not None:
        fail(refused, EXIT_BAD_INPUT)

    with domain_errors():
        return load_settings()


@contextmanager
def opened_store(**kwargs: Any) -> Iterator[RagStore]:
    """The facade, opened from the environment and closed after the command, with domain errors mapped.

    Commands that only read what SQL holds (listings, reports) pass `recover=False`: the vector index is
    then not opened, which keeps them fast on a large store (RagStore.open explains)."""
    from ragstore.service import RagStore

    with domain_errors():
        cfg = settings()
        check_data_dir(cfg)
        store = RagStore.open(cfg, **kwargs)
        try:
            yield store
        finally:
            store.close()


def start_remote_mode(url: str | None, key_file: Path | None, env_key: str | None) -> Token[Remote | None]:
    """Local or remote mode for the command about to run, from the global options (cli/remote.py); exit 2
    with one line when they cannot be used."""
    from ragstore.cli.remote import BadRemote, activate, remote_mode

    try:
        return activate(remote_mode(url, key_file, env_key))
    except BadRemote as exc:
        fail(str(exc), EXIT_BAD_INPUT)


@contextmanager
def store_or_client(**kwargs: Any) -> Iterator[RagStore | RagStoreClient]:
    """The facade (`opened_store(**kwargs)`) in local mode, a client of the server in remote mode
    (`--url`); closed after the command, domain errors mapped to one line and their exit code either way."""
    from ragstore.cli.remote import current_remote

    remote = current_remote()
    if remote is None:
        with opened_store(**kwargs) as store:
            yield store
        return
    from ragstore.client import RagStoreClient

    with domain_errors(), RagStoreClient(remote.url, remote.api_key) as client:
        yield client


@contextmanager
def migrator() -> Iterator[Migrator]:
    """Alembic on the configured database, without opening the store (which would refuse an old schema)."""
    from sqlalchemy.exc import InterfaceError, OperationalError

    from ragstore.db.engine import Database
    from ragstore.errors import Unavailable
    from ragstore.migrations import Migrator

    with domain_errors():
        cfg = settings()
        check_data_dir(cfg)
        db = Database(cfg)
        try:
            yield Migrator(db.engine)
        except (OperationalError, InterfaceError) as exc:  # the server is down, refuses the login, ...
            problem = (str(exc.orig or exc).strip().splitlines() or [type(exc).__name__])[0]
            raise Unavailable(f"the database {cfg.sqlalchemy_url} cannot be used: {problem}") from exc
        finally:
            db.dispose()


def print_json(data: Any) -> None:
    from pydantic import BaseModel

    def default(value: Any) -> Any:
        if isinstance(value, BaseModel):
            return value.model_dump(mode="json")
        return str(value)

    if isinstance(data, BaseModel):
        data = data.model_dump(mode="json")
    elif isinstance(data, list):
        data = [d.model_dump(mode="json") if isinstance(d, BaseModel) else d for d in data]
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2, default=default) + "\n")


def print_listing(
    rows: Sequence[T], columns: Sequence[str], cells: Callable[[T], Sequence[str | None]], *, as_json: bool
) -> None:
    """What a `list` command prints: the rows as JSON with --json, else a table of `columns` with one line of
    `cells(row)` per row (rich.table is imported only by a command that prints one)."""
    if as_json:
        print_json(list(rows))
        return
    from rich.table import Table

    table = Table(*columns)
    for row in rows:
        table.add_row(*(None if cell is None else plain(cell) for cell in cells(row)))  # stored text, literally
    out.print(table)


def stdin_is_terminal() -> bool:
    """Whether someone could answer a question (a function, so a test can stand in for a terminal)."""
    return sys.stdin.isatty()


def confirm_destructive(question: str, yes: bool) -> None:
    """Go on only with --yes or a "yes" typed at a terminal; otherwise exit EXIT_NOT_CONFIRMED, for every command.

    Without a terminal nobody can answer, so the command refuses at once rather than reading a script's stdin.
    """
    if yes:
        return
    if not stdin_is_terminal():
        fail("not confirmed: stdin is not a terminal (pass --yes)", EXIT_NOT_CONFIRMED)
    try:
        confirmed = typer.confirm(question, default=False)
    except typer.Abort:  # Ctrl-C or end of input at the prompt
        confirmed = False
    if not confirmed:
        fail("not confirmed (pass --yes)", EXIT_NOT_CONFIRMED)


@contextmanager
def progress_bar(description: str = "{task.description}", *, disable: bool = False) -> Iterator[Progress]:
    """A progress bar on stderr (rich.progress is imported only by the commands that show one)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn(description), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err, disable=disable) as bar:
        yield bar


def human_size(n: int | None) -> str:
    if n is None:
        return ""
    value = float(n)
    for unit in ("B", "KiB", "MiB"):
        if value < 1024:
            return f"{value:,.0f} {unit}" if unit == "B" else f"{value:,.1f} {unit}"
        value /= 1024
    return f"{value:,.1f} GiB"


# Options spelled the same in every command: -c/--collection names a collection, --json prints JSON,
# -y/--yes confirms a destructive command. (-k is kept for the number of search results.)
JsonOpt: Any = typer.Option(False, "--json", help="Print JSON instead of text.")
CollectionOpt: Any = typer.Option(..., "--collection", "-c", help="The collection.")
OptionalCollectionOpt: Any = typer.Option(None, "--collection", "-c", help="Default: every collection.")
YesOpt: Any = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation.")
