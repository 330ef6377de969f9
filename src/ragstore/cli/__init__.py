"""The `ragstore` command: one module per command group, each command opening the facade, calling it and
printing the result.

Exit codes, the same for every command: 0 ok; 1 the operation failed (or, for `check` and `dr report`,
problems remain); 2 bad usage or bad input (one readable line on stderr says what); 3 a destructive
command was not confirmed (no --yes and stdin is not a terminal, or the answer was no). Every command
but `serve` and `worker` takes --json (`worker --once` always prints JSON).

Importing this package must stay cheap (`ragstore --help` imports it): the command modules import the
facade, the database and any model inside the commands that need them.
"""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path

import typer

from ragstore.cli import (
    audit,
    backup,
    chat,
    check,
    collections,
    config,
    db,
    documents,
    dr,
    health,
    index,
    ingest,
    jobs,
    keys,
    lifecycle,
    maintenance,
    mcp,
    migrate,
    records,
    search,
    secrets,
    usage,
    users,
    worker,
)

__all__ = ["app", "main"]

app = typer.Typer(
    name="ragstore",
    help="ragstore: the data layer of a RAG service (collections, documents, embeddings, vector index, search).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _as_the_local_operator(
    ctx: typer.Context,
    url: str | None = typer.Option(
        None,
        "--url",
        envvar="RAGSTORE_URL",
        help="Run the command against the ragstore server at this URL instead of the local store (the commands "
        "the HTTP API serves; the others exit 2).",
    ),
    api_key_file: Path | None = typer.Option(
        None,
        "--api-key-file",
        help="A file holding the API key for --url (default: the RAGSTORE_API_KEY variable).",
        dir_okay=False,
    ),
) -> None:
    """Every command acts as the operating-system user running it (`cli:<user>` in the audit log): the CLI
    runs beside the data files, so it needs no key (issue 16). The call ends with the command, so a program
    that invokes the CLI in-process (a test, a notebook) does not stay the operator afterwards.

    With --url it acts as the server's key instead (cli/remote.py)."""
    from ragstore.cli.common import start_remote_mode
    from ragstore.cli.remote import deactivate
    from ragstore.security.context import begin_call, end_call, operator_principal

    remote_token = start_remote_mode(url, api_key_file, os.environ.get("RAGSTORE_API_KEY"))
    token = begin_call(operator_principal())

    def end() -> None:
        deactivate(remote_token)
        end_call(token)

    ctx.call_on_close(end)


app.command("init")(lifecycle.init)
app.command("serve")(lifecycle.serve)
app.command("worker")(worker.worker)
app.command("ingest")(ingest.ingest)
app.command("search")(search.search)
app.command("analytics")(search.analytics)
app.command("usage")(usage.usage)
app.command("health")(health.health)
app.command("mcp")(mcp.mcp)  # issue 21: the MCP server (`ragstore[mcp]`)
app.add_typer(collections.app, name="collections")
app.add_typer(documents.app, name="documents")
app.add_typer(config.app, name="config")
app.add_typer(migrate.app, name="migrate")
app.add_typer(index.app, name="index")
app.add_typer(check.app, name="check")
app.add_typer(db.app, name="db")
app.add_typer(maintenance.app, name="maintenance")
app.add_typer(jobs.app, name="jobs")
app.add_typer(backup.app, name="backup")
app.add_typer(dr.app, name="dr")
app.add_typer(secrets.app, name="secrets")
app.add_typer(users.app, name="users")
app.add_typer(keys.app, name="keys")
app.add_typer(audit.app, name="audit")
app.add_typer(chat.app, name="chat")
app.add_typer(records.app, name="records")  # issue 18: application records


def _invalid_argument(argv: list[str]) -> str | None:
    """The first argument that is not valid UTF-8, as a readable line (None when all are).

    Python turns bytes of an argument that are not UTF-8 into lone surrogates; such a string can reach no
    database, model or terminal, so it is refused here, once, for every command."""
    for position, arg in enumerate(argv, start=1):
        try:
            arg.encode("utf-8")
        except UnicodeEncodeError:
            shown = os.fsencode(arg).decode("utf-8", "backslashreplace")
            return f"argument {position} is not valid UTF-8 text: {shown}"
    return None


def main() -> None:
    """The console script: every outcome is an exit code and, on failure, one line on stderr.

    Errors a command expects are turned into their line where they happen (`cli.common.domain_errors`);
    this is the net under them, so an unexpected one is a line too rather than a traceback (set
    RAGSTORE_LOG_LEVEL=DEBUG to see the traceback)."""
    from ragstore.cli.common import EXIT_BAD_INPUT, EXIT_FAILED, fail

    for stream in (sys.stdout, sys.stderr):  # text stored before it was checked must still print
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="backslashreplace")
    problem = _invalid_argument(sys.argv[1:])
    if problem is not None:
        try:
            fail(problem, EXIT_BAD_INPUT)
        except typer.Exit as done:
            sys.exit(done.exit_code)
    try:
        app()
    except Exception as exc:
        if os.environ.get("RAGSTORE_LOG_LEVEL", "").upper() == "DEBUG":
            raise
        # Text that is not valid Unicode (a lone surrogate from a file) is the input's fault, not ragstore's.
        code = EXIT_BAD_INPUT if isinstance(exc, UnicodeError) else EXIT_FAILED
        what = "input is not valid Unicode text" if code == EXIT_BAD_INPUT else f"unexpected {type(exc).__name__}"
        try:
            fail(f"{what}: {exc}", code)
        except typer.Exit as done:
            sys.exit(done.exit_code)
