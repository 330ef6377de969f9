"""`ragstore ingest`: files into a collection, or (`--sync`) a collection made to mirror folders."""

from __future__ import annotations

from pathlib import Path

import typer

from ragstore.cli.common import EXIT_BAD_INPUT, JsonOpt, domain_errors, err, opened_store, out, print_json, printable

__all__ = ["ingest"]


def ingest(
    paths: list[str] = typer.Argument(..., help="Files, folders (recursive) or globs."),
    collection: str = typer.Option(..., "--collection", "-c", help="Target collection."),
    create: bool = typer.Option(
        True, help="Create the collection if it does not exist (only once a document is stored)."
    ),
    root: Path | None = typer.Option(
        None, "--root", help="Store sources as paths relative to this folder (default: resolved absolute paths)."
    ),
    sync: bool = typer.Option(
        False, "--sync", help="Mirror the folders: also delete documents of files gone from them."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Report what would happen; change nothing."),
    keep_duplicates: bool = typer.Option(
        False, "--keep-duplicates", help="Store a file whose content another document holds under its own source."
    ),
    encoding: str | None = typer.Option(None, "--encoding", help="Decode text files with this encoding."),
    progress_interval: float = typer.Option(
        5.0, "--progress-interval", min=0.1, help="Seconds between progress lines when stderr is not a terminal."
    ),
    as_json: bool = JsonOpt,
) -> None:
    """Load, chunk, embed, store and index documents (.txt .md .html .pdf .json .jsonl); exit 2 if any failed."""
    from ragstore.cli.ingest_progress import IngestView

    view = None if as_json else IngestView(err, terminal=err.is_terminal, interval_s=progress_interval)
    with opened_store() as store, domain_errors():
        created: list[str] = []

        def make() -> None:
            store.collections.create(collection, exist_ok=True)
            created.append(collection)

        run = store.documents.sync_paths if sync else store.documents.ingest_paths
        try:
            report = run(
                collection,
                paths,
                root=root,
                dry_run=dry_run,
                keep_duplicates=keep_duplicates,
                encoding=encoding,
                progress=view,
                create=make if create else None,
            )
        finally:
            if view is not None:
                view.close()
    if as_json:
        print_json(
            {"collection": collection, "summary": report.summary, "documents": report.outcomes, "dry_run": dry_run}
        )
    else:
        if created:
            out.print(f"created collection [bold]{collection}[/]")
        for o in report.outcomes:
            if o.status == "failed":
                err.print(f"[red]failed[/] {printable(str(o.error))}", highlight=False)
            elif o.status == "duplicate":
                err.print(f"duplicate {printable(o.source_uri)} of {printable(str(o.duplicate_of))}", highlight=False)
        s = report.summary
        prefix = "dry run, would be: " if dry_run else ""
        out.print(
            f"{collection}: {prefix}[green]{s['added']} added[/], {s['replaced']} replaced, "
            f"{s['unchanged']} unchanged, {s['duplicate']} duplicate, {s['deleted']} deleted, "
            f"[red]{s['failed']} failed[/]",
            highlight=False,
        )
    if report.count("failed"):
        raise typer.Exit(EXIT_BAD_INPUT)
