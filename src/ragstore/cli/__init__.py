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

import typer

from ragstore.cli import (
    backup,
    check,
    collections,
    config,
    db,
    documents,
    dr,
    index,
    jobs,
    lifecycle,
    migrate,
    search,
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
app.command("init")(lifecycle.init)
app.command("serve")(lifecycle.serve)
app.command("worker")(worker.worker)
app.command("ingest")(search.ingest)
app.command("search")(search.search)
app.command("analytics")(search.analytics)
app.add_typer(collections.app, name="collections")
app.add_typer(documents.app, name="documents")
app.add_typer(config.app, name="config")
app.add_typer(migrate.app, name="migrate")
app.add_typer(index.app, name="index")
app.add_typer(check.app, name="check")
app.add_typer(db.app, name="db")
app.add_typer(jobs.app, name="jobs")
app.add_typer(backup.app, name="backup")
app.add_typer(dr.app, name="dr")


def main() -> None:
    app()
