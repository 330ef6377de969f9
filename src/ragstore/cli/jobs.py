"""`ragstore jobs`: put work on the queue that `ragstore worker` processes drain, and see what it holds."""

from __future__ import annotations

import json

import typer

from ragstore.cli.common import EXIT_BAD_INPUT, JsonOpt, domain_errors, fail, opened_store, out, print_json

__all__ = ["app"]

app = typer.Typer(help="The job queue that `ragstore worker` processes drain.", no_args_is_help=True)


@app.command("enqueue")
def jobs_enqueue(
    kind: str = typer.Argument(..., help="ingest_documents, ingest_paths, sync_paths, rebuild_index or checkpoint."),
    payload: str = typer.Option("{}", help="The job's payload as a JSON object."),
    priority: int = typer.Option(0, help="Higher runs first."),
    as_json: bool = JsonOpt,
) -> None:
    """Queue a job for the workers."""
    from ragstore.runtime.handlers import HANDLERS

    if kind not in HANDLERS:
        fail(f"unknown job kind {kind!r}; known: {', '.join(sorted(HANDLERS))}", EXIT_BAD_INPUT)
    try:
        body = json.loads(payload)
    except ValueError as exc:
        fail(f"--payload is not JSON: {exc}", EXIT_BAD_INPUT)
    if not isinstance(body, dict):
        fail("--payload must be a JSON object", EXIT_BAD_INPUT)
    with opened_store() as store:
        job_id = store.jobs.enqueue(kind, body, priority=priority)
    if as_json:
        print_json({"id": job_id, "kind": kind})
    else:
        out.print(f"queued job {job_id} ({kind})")


@app.command("list")
def jobs_list(
    state: str | None = typer.Option(None, help="Only jobs in this state (queued, leased, done, dead)."),
    collection: str | None = typer.Option(None, help="Only the jobs of this collection."),
    limit: int = typer.Option(50, min=1, max=10_000),
    offset: int = typer.Option(0, min=0, help="Skip this many of the newest first."),
    as_json: bool = JsonOpt,
) -> None:
    """Jobs, newest first, with their state, progress (documents, chunks, chunks/s, time left) and last error."""
    from rich.table import Table

    with opened_store(recover=False) as store, domain_errors():
        rows = store.jobs.list(state=state, limit=limit, offset=offset, collection=collection)
    if as_json:
        print_json(rows)
        return
    table = Table("id", "kind", "collection", "state", "attempts", "documents", "chunks", "rate", "left", "last error")
    for row in rows:
        p = row.progress
        documents = chunks = rate = left = ""
        if p is not None:
            documents = f"{p.documents_done}/{p.documents_total}" if p.documents_total else ""
            if p.chunks_total:
                chunks = f"{p.chunks_embedded} embedded, {p.chunks_stored} stored / {p.chunks_total}"
            rate = f"{p.chunks_per_s:.1f}/s" if p.chunks_per_s is not None else ""
            left = _duration(p.eta_s) if p.eta_s is not None and p.state == "running" else ""
        table.add_row(
            str(row.id),
            row.kind,
            row.collection or "",
            row.state,
            str(row.attempts),
            documents,
            chunks,
            rate,
            left,
            row.last_error or "",
        )
    out.print(table)


def _duration(seconds: float) -> str:
    whole = round(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
