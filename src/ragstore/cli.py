"""The `ragstore` command. Each command opens the store, calls one facade method and prints the result.

Exit codes: 0 ok, 1 the operation failed, 2 bad usage or bad input (the one readable line on stderr says
what). Every read command takes --json for scripts.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NoReturn, TypeVar

import typer
from pydantic import BaseModel
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ragstore.config import Settings, load_settings
from ragstore.errors import ConfigError, InvalidInput, MigrationError, NotFound, RagstoreError
from ragstore.vectors.registry import migration_targets

__all__ = ["app", "main"]

T = TypeVar("T")
out = Console()
err = Console(stderr=True)

app = typer.Typer(
    name="ragstore",
    help="ragstore: the data layer of a RAG service (collections, documents, embeddings, vector index, search).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
collections_app = typer.Typer(help="List, create and delete collections.", no_args_is_help=True)
documents_app = typer.Typer(help="List, show and delete documents.", no_args_is_help=True)
config_app = typer.Typer(help="Show and check the configuration.", no_args_is_help=True)
migrate_app = typer.Typer(help="Database schema migrations (Alembic).", no_args_is_help=True)
index_app = typer.Typer(
    help="The vector and lexical indexes: status, rebuild from the database, re-analyse.", no_args_is_help=True
)
db_app = typer.Typer(help="Relational-store administration (PostgreSQL roles).", no_args_is_help=True)
jobs_app = typer.Typer(help="The job queue that `ragstore worker` processes drain.", no_args_is_help=True)
app.add_typer(collections_app, name="collections")
app.add_typer(documents_app, name="documents")
app.add_typer(config_app, name="config")
app.add_typer(migrate_app, name="migrate")
app.add_typer(index_app, name="index")
app.add_typer(db_app, name="db")
backup_app = typer.Typer(
    help="Backups of the database and the vector index: create, list, verify, restore, prune.", no_args_is_help=True
)
dr_app = typer.Typer(
    help="Disaster recovery: is a restore possible now, and how long would it take.", no_args_is_help=True
)
app.add_typer(jobs_app, name="jobs")
app.add_typer(backup_app, name="backup")
app.add_typer(dr_app, name="dr")

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2


def exit_code_for(exc: RagstoreError) -> int:
    if isinstance(exc, (InvalidInput, NotFound, ConfigError)):
        return EXIT_BAD_INPUT
    return EXIT_FAILED


def fail(message: str, code: int) -> NoReturn:
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


@contextmanager
def domain_errors() -> Iterator[None]:
    """Turn ragstore errors into one line on stderr and the exit code for their kind."""
    try:
        yield
    except RagstoreError as exc:
        fail(exc.message, exit_code_for(exc))


def settings() -> Settings:
    with domain_errors():
        return load_settings()


@contextmanager
def opened_store(**kwargs: Any) -> Iterator[Any]:
    from ragstore.service import RagStore

    with domain_errors():
        store = RagStore.open(settings(), **kwargs)
        try:
            yield store
        finally:
            store.close()


def print_json(data: Any) -> None:
    def default(value: Any) -> Any:
        if isinstance(value, BaseModel):
            return value.model_dump(mode="json")
        return str(value)

    if isinstance(data, BaseModel):
        data = data.model_dump(mode="json")
    elif isinstance(data, list):
        data = [d.model_dump(mode="json") if isinstance(d, BaseModel) else d for d in data]
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2, default=default) + "\n")


JsonOpt = typer.Option(False, "--json", help="Print JSON instead of a table.")


@contextmanager
def migrator() -> Iterator[Any]:
    from ragstore.db.engine import Database
    from ragstore.migrations import Migrator

    with domain_errors():
        db = Database(settings())
        try:
            yield Migrator(db.engine)
        finally:
            db.dispose()


# -- init / serve ----------------------------------------------------------------------------------------------
@app.command()
def init() -> None:
    """Create or upgrade the database (Alembic upgrade head) and the index directory."""
    cfg = settings()
    with migrator() as m:
        m.verify_checksums()
        before = m.current()
        after = m.upgrade("head")
    cfg.index_dir.mkdir(parents=True, exist_ok=True)
    state = "already at" if before == after else f"upgraded from {before or 'empty'} to"
    out.print(f"database {state} revision [bold]{after}[/] ({cfg.sqlalchemy_url.split('?')[0]})")
    out.print(f"index directory {cfg.index_dir}")


@app.command()
def serve(
    host: str | None = typer.Option(None, help="Address to bind (default RAGSTORE_API_HOST, 127.0.0.1)."),
    port: int | None = typer.Option(None, help="Port (default RAGSTORE_API_PORT, 8000)."),
    workers: int | None = typer.Option(None, min=1, max=64, help="Server processes (default RAGSTORE_API_WORKERS, 1)."),
) -> None:
    """Serve the HTTP API (OpenAPI docs at /docs)."""
    import uvicorn

    from ragstore.api.app import create_app
    from ragstore.vectors.factory import check_server_processes

    cfg = settings()
    processes = workers or cfg.api_workers
    with domain_errors():
        check_server_processes(cfg, processes)
    options: dict[str, Any] = {
        "host": host or cfg.api_host,
        "port": port or cfg.api_port,
        "log_level": cfg.log_level.lower(),
        "access_log": cfg.api_access_log,
    }
    if processes > 1:
        # Each process builds its own app (and store) from the environment.
        uvicorn.run("ragstore.api.app:create_app", factory=True, workers=processes, **options)
        return
    uvicorn.run(create_app(cfg), **options)


def configure_logging(cfg: Settings) -> None:
    """ragstore's own loggers at RAGSTORE_LOG_LEVEL, everything else at WARNING, one line per record."""
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s [%(process)d] %(message)s")
    logging.getLogger("ragstore").setLevel(cfg.log_level)


@app.command()
def worker(
    once: bool = typer.Option(False, "--once", help="Apply what is due in the outbox and run due jobs, then exit."),
    jobs: bool = typer.Option(True, "--jobs/--no-jobs", help="Run jobs from the job queue as well as the outbox."),
    threads: int | None = typer.Option(
        None, min=1, max=64, help="Jobs run at once (default RAGSTORE_WORKER_JOB_THREADS, 1)."
    ),
) -> None:
    """Drain the outbox and the job queue. Run any number, on any machine: claims are leased, never shared."""
    import signal
    import threading

    from ragstore.sync.job_runner import JobRunner

    cfg = settings()
    configure_logging(cfg)
    with opened_store(start_worker=not once) as store:
        runner = JobRunner(
            store, threads=threads or cfg.worker_concurrency_jobs, poll_interval_s=cfg.sync_poll_interval_s
        )
        if once:
            applied = store.sync_now()
            applied["applied"] += store.recovery.applied_pending  # opening the store applies what is due
            ran = 0
            while jobs and runner.run_one():
                ran += 1
            store.persist()
            print_json({"outbox": applied, "jobs_run": ran, "jobs_failed": runner.failed})
            return
        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        if store.bus is not None:
            store.bus.subscribe(lambda event: runner.wake() if event.get("e") == "jobs" else None)
        if jobs:
            runner.start()
        log = logging.getLogger("ragstore.worker")
        log.info("worker %s ready (outbox%s)", store.applier.owner, " and jobs" if jobs else "")
        while not stop.wait(1.0):
            pass
        runner.stop()
        log.info(
            "worker %s stopping: applied %d outbox operations, replayed %d, ran %d jobs (%d failed)",
            store.applier.owner,
            store.applier.applications,
            store.applier.replays,
            runner.completed,
            runner.failed,
        )


@jobs_app.command("enqueue")
def jobs_enqueue(
    kind: str = typer.Argument(..., help="ingest_documents, ingest_paths, rebuild_index or checkpoint."),
    payload: str = typer.Option("{}", help="The job's payload as a JSON object."),
    priority: int = typer.Option(0, help="Higher runs first."),
    as_json: bool = JsonOpt,
) -> None:
    """Queue a job for the workers."""
    from ragstore.sync.handlers import HANDLERS

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
        if store.bus is not None:
            store.bus.publish("jobs")
    if as_json:
        print_json({"id": job_id, "kind": kind})
    else:
        out.print(f"queued job {job_id} ({kind})")


@jobs_app.command("list")
def jobs_list(
    state: str | None = typer.Option(None, help="Only jobs in this state (queued, leased, done, dead)."),
    limit: int = typer.Option(50, min=1, max=10_000),
    as_json: bool = JsonOpt,
) -> None:
    """Jobs, newest first, with their state, attempts and last error."""
    with opened_store() as store, domain_errors():
        rows = store.jobs.recent(state=state, limit=limit)
    if as_json:
        print_json(rows)
        return
    table = Table("id", "kind", "state", "attempts", "lease owner", "last error")
    for row in rows:
        table.add_row(
            str(row["id"]),
            row["kind"],
            row["state"],
            str(row["attempts"]),
            row["lease_owner"] or "",
            row["last_error"] or "",
        )
    out.print(table)


# -- ingest / search -------------------------------------------------------------------------------------------
@app.command()
def ingest(
    paths: list[str] = typer.Argument(..., help="Files, folders (recursive) or globs."),
    collection: str = typer.Option(..., "--collection", "-c", help="Target collection."),
    create: bool = typer.Option(True, help="Create the collection if it does not exist."),
    as_json: bool = JsonOpt,
) -> None:
    """Load, chunk, embed, store and index documents (.txt .md .html .pdf .json .jsonl)."""
    from ragstore.service import expand_paths

    with opened_store() as store, domain_errors():
        if create and collection not in {c.name for c in store.list_collections()}:
            store.create_collection(collection)
            if not as_json:
                out.print(f"created collection [bold]{collection}[/]")
        files = expand_paths(paths)
        with Progress(
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err,
            disable=as_json or not err.is_terminal,
        ) as bar:
            task = bar.add_task("ingesting", total=len(files))
            report = store.ingest_paths(
                collection, files, progress=lambda done, total, _: bar.update(task, completed=done)
            )
    if as_json:
        print_json({"collection": collection, "summary": report.summary, "documents": report.outcomes})
    else:
        failed = [o for o in report.outcomes if o.status == "failed"]
        for o in failed:
            err.print(f"[red]failed[/] {o.error}", highlight=False)
        s = report.summary
        out.print(
            f"{collection}: [green]{s['added']} added[/], {s['unchanged']} unchanged, "
            f"{s['replaced']} replaced, [red]{s['failed']} failed[/]"
        )
    if report.count("failed"):
        raise typer.Exit(EXIT_BAD_INPUT)


@app.command()
def search(
    query: str = typer.Argument(..., help="The question or text to search for."),
    collection: str = typer.Option(..., "--collection", "-c"),
    k: int = typer.Option(10, "-k", "--k", help="Number of results."),
    mode: str | None = typer.Option(
        None, "--mode", "-m", help="hybrid (dense + lexical, fused), dense or lexical. Default: RAGSTORE_SEARCH_MODE."
    ),
    filter_json: str | None = typer.Option(None, "--filter", help='Metadata filter as JSON, e.g. \'{"lang": "ko"}\'.'),
    offset: int = typer.Option(0, "--offset", help="Skip this many results (a later page)."),
    cursor: str | None = typer.Option(None, "--cursor", help="Continue from a previous result's next_cursor."),
    min_score: float | None = typer.Option(None, "--min-score", help="Leave out results scoring below this."),
    explain: bool = typer.Option(False, "--explain", help="Show each result's dense and lexical rank and score."),
    as_json: bool = JsonOpt,
) -> None:
    """Ranked chunks with their document, score and text."""
    filter_spec = None
    if filter_json:
        try:
            filter_spec = json.loads(filter_json)
        except json.JSONDecodeError as exc:
            fail(f"--filter is not valid JSON: {exc.msg}", EXIT_BAD_INPUT)
    with opened_store() as store, domain_errors():
        result = store.search(
            collection,
            query,
            k=k,
            filter=filter_spec,
            mode=mode,
            offset=offset,
            cursor=cursor,
            min_score=min_score,
            explain=explain,
        )
    if as_json:
        print_json(result)
        return
    table = Table(title=f"{len(result.hits)} results ({result.mode}) in {result.took_ms:.1f} ms", show_lines=True)
    table.add_column("#", justify="right")
    table.add_column("score", justify="right")
    table.add_column("document")
    table.add_column("text", overflow="fold")
    if explain:
        table.add_column("dense / lexical rank", justify="right")
    for rank, hit in enumerate(result.hits, start=result.offset + 1):
        snippet = hit.text if len(hit.text) <= 300 else hit.text[:300] + "…"
        row = [str(rank), f"{hit.score:.4g}", f"{hit.title}\n[dim]{hit.source_uri}#{hit.ordinal}[/]", snippet]
        if explain and hit.explain is not None:
            row.append(f"{hit.explain.get('dense_rank') or '-'} / {hit.explain.get('lexical_rank') or '-'}")
        table.add_row(*row)
    out.print(table)
    if result.next_cursor:
        err.print(f"more: --cursor {result.next_cursor}")


@app.command()
def analytics(
    collection: str = typer.Argument(..., help="The collection to summarise."),
    days: int = typer.Option(7, "--days", help="The window, in days."),
    as_json: bool = JsonOpt,
) -> None:
    """What was searched, how fast, how often the cache answered, and which chunks users found relevant."""
    with opened_store() as store, domain_errors():
        data = store.analytics(collection, days=days)
    if as_json:
        print_json(data)
        return
    q = data["queries"]
    out.print(
        f"{q['total']} searches in {days} days; by mode {q['by_mode']}; cache hit rate {q['cache_hit_rate']}; "
        f"{q['zero_results']} without results; latency ms {q['latency_ms']}"
    )
    fb = data["feedback"]
    out.print(f"feedback: {fb['relevant']} relevant, {fb['irrelevant']} not (precision {fb['precision']})")
    table = Table(title="top queries")
    table.add_column("query")
    table.add_column("count", justify="right")
    table.add_column("avg results", justify="right")
    for row in data["top_queries"]:
        table.add_row(row["query"], str(row["count"]), str(row["avg_results"]))
    out.print(table)


# -- collections -----------------------------------------------------------------------------------------------
@collections_app.command("list")
def collections_list(as_json: bool = JsonOpt) -> None:
    """Collections with their document and chunk counts."""
    with opened_store() as store, domain_errors():
        rows = store.list_collections()
    if as_json:
        print_json(rows)
        return
    table = Table()
    for col in ("name", "model", "dim", "documents", "chunks", "indexed"):
        table.add_column(col)
    for c in rows:
        table.add_row(
            c.name,
            c.embedding_model,
            str(c.dimension),
            str(c.document_count),
            str(c.chunk_count),
            str(c.indexed_chunk_count),
        )
    out.print(table)


@collections_app.command("create")
def collections_create(
    name: str,
    description: str = typer.Option("", help="Free text."),
    embedding_model: str | None = typer.Option(
        None, help="Default: the configured embedder; another name means you bring vectors."
    ),
    dimension: int | None = typer.Option(None, help="Required with a custom embedding model."),
    as_json: bool = JsonOpt,
) -> None:
    """Create a collection."""
    with opened_store() as store, domain_errors():
        info = store.create_collection(
            name, description=description, embedding_model=embedding_model, dimension=dimension
        )
    if as_json:
        print_json(info)
    else:
        out.print(f"created collection [bold]{info.name}[/] ({info.embedding_model}, {info.dimension}-d)")


@collections_app.command("delete")
def collections_delete(
    name: str, yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation.")
) -> None:
    """Delete a collection with all its documents and vectors."""
    if not yes and not typer.confirm(f"Delete collection {name!r} and all its documents?", default=False):
        fail("not confirmed (pass --yes)", EXIT_BAD_INPUT)
    with opened_store() as store, domain_errors():
        store.delete_collection(name)
    out.print(f"deleted collection [bold]{name}[/]")


# -- documents -------------------------------------------------------------------------------------------------
@documents_app.command("list")
def documents_list(
    collection: str = typer.Option(..., "--collection", "-c"),
    limit: int = typer.Option(100, min=1, max=10_000),
    offset: int = typer.Option(0, min=0),
    as_json: bool = JsonOpt,
) -> None:
    """Documents of a collection."""
    with opened_store() as store, domain_errors():
        docs = store.list_documents(collection, limit=limit, offset=offset)
    if as_json:
        print_json(docs)
        return
    table = Table()
    for col in ("id", "title", "source", "type", "chunks", "state"):
        table.add_column(col)
    for d in docs:
        table.add_row(str(d.id), d.title, d.source_uri, d.mime_type, str(d.chunk_count), d.index_state)
    out.print(table)


@documents_app.command("show")
def documents_show(
    document_id: int,
    collection: str = typer.Option(..., "--collection", "-c"),
    chunks: bool = typer.Option(False, help="Include the chunks."),
    as_json: bool = JsonOpt,
) -> None:
    """One document (and its chunks)."""
    with opened_store() as store, domain_errors():
        doc = store.get_document(collection, document_id, with_chunks=chunks)
    if as_json:
        print_json(doc)
        return
    for key in ("id", "title", "source_uri", "mime_type", "size_bytes", "content_hash", "index_state", "chunk_count"):
        out.print(f"[bold]{key}[/]: {getattr(doc, key)}", highlight=False)
    out.print(f"[bold]metadata[/]: {json.dumps(doc.metadata, ensure_ascii=False)}", highlight=False)
    for c in doc.chunks or []:
        out.print(f"\n[dim]chunk {c.ordinal} ({c.token_count} tokens, {c.status})[/]\n{c.text}", highlight=False)


@documents_app.command("delete")
def documents_delete(document_id: int, collection: str = typer.Option(..., "--collection", "-c")) -> None:
    """Delete a document, its chunks and vectors."""
    with opened_store() as store, domain_errors():
        store.delete_document(collection, document_id)
    out.print(f"deleted document {document_id} from [bold]{collection}[/]")


# -- config ----------------------------------------------------------------------------------------------------
@config_app.command("show")
def config_show(as_json: bool = JsonOpt) -> None:
    """Every setting by its environment variable, secrets masked."""
    values = settings().masked()
    if as_json:
        print_json(values)
        return
    table = Table()
    table.add_column("variable")
    table.add_column("value")
    for key, value in values.items():
        table.add_row(key, "" if value is None else str(value))
    out.print(table)


@config_app.command("check")
def config_check() -> None:
    """Validate the configuration, reach the database and verify its migration checksums."""
    cfg = settings()
    with migrator() as m:
        try:
            m.verify_checksums()
            current, head = m.current(), m.head()
        except RagstoreError:
            raise
        except Exception as exc:
            raise MigrationError(f"cannot reach the database {cfg.sqlalchemy_url.split('@')[-1]}: {exc}") from exc
    out.print(f"configuration ok (profile {cfg.env})")
    out.print(
        f"database schema at {current or 'nothing'}; code needs {head}"
        + ("" if current == head else ": run `ragstore init`")
    )


# -- migrate ---------------------------------------------------------------------------------------------------
@migrate_app.command("status")
def migrate_status(as_json: bool = JsonOpt) -> None:
    """Current and head revision, and each revision's state."""
    with migrator() as m:
        m.verify_checksums()
        status = m.status()
    if as_json:
        print_json(
            {
                "current": status.current,
                "head": status.head,
                "up_to_date": status.up_to_date,
                "revisions": [r.__dict__ for r in status.revisions],
            }
        )
        return
    out.print(f"current: {status.current or 'nothing'}   head: {status.head}")
    for r in status.revisions:
        out.print(f"  [{'x' if r.applied else ' '}] {r.revision}  {r.message}  ({r.filename})", highlight=False)


@migrate_app.command("upgrade")
def migrate_upgrade(revision: str = typer.Argument("head")) -> None:
    """Upgrade the schema to REVISION (default head)."""
    with migrator() as m:
        m.verify_checksums()
        now = m.upgrade(revision)
    out.print(f"database at revision {now}")


@migrate_app.command("downgrade")
def migrate_downgrade(
    revision: str = typer.Argument(..., help="Target revision, or 'base' for an empty schema."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
) -> None:
    """Downgrade the schema to REVISION (data in dropped tables is lost)."""
    if not yes and not typer.confirm(
        f"Downgrade the database to {revision}? Dropped tables lose their data.", default=False
    ):
        fail("not confirmed (pass --yes)", EXIT_BAD_INPUT)
    with migrator() as m:
        m.verify_checksums()
        now = m.downgrade(revision)
    out.print(f"database at revision {now or 'base'}")


# -- index -----------------------------------------------------------------------------------------------------
@index_app.command("rebuild")
def index_rebuild(
    collection: str | None = typer.Option(None, "--collection", "-c", help="Default: every collection."),
) -> None:
    """Rebuild the vector index from the chunks and embeddings in the database (no embedding calls)."""
    with (
        opened_store() as store,
        domain_errors(),
        Progress(TextColumn("rebuilding"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=err) as bar,
    ):
        task = bar.add_task("rebuild", total=None)
        counts = store.rebuild_index(
            collection, progress=lambda done, total: bar.update(task, completed=done, total=total)
        )
    for name, n in counts.items():
        out.print(f"{name}: {n} vectors")


@index_app.command("relex")
def index_relex(
    collection: str | None = typer.Option(None, "--collection", "-c", help="Default: every collection."),
) -> None:
    """Rebuild the lexical index (the analysed terms) with the configured analyzer (RAGSTORE_LEXICAL_ANALYZER)."""
    with (
        opened_store() as store,
        domain_errors(),
        Progress(TextColumn("analysing"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=err) as bar,
    ):
        task = bar.add_task("relex", total=None)
        counts = store.reindex_lexical(
            collection, progress=lambda done, total: bar.update(task, completed=done, total=total)
        )
    for name, n in counts.items():
        out.print(f"{name}: {n} chunks analysed")


@index_app.command("migrate")
def index_migrate(
    to: str = typer.Option(..., "--to", help=f"One of {', '.join(migration_targets())} (with its settings)."),
    as_json: bool = JsonOpt,
) -> None:
    """Move the vectors to another backend: rebuild from SQL, verify counts and queries, switch; resumes."""
    with (
        opened_store() as store,
        domain_errors(),
        Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=err
        ) as bar,
    ):
        task = bar.add_task(f"copying to {to}", total=None)
        report = store.migrate_index(
            to, progress=lambda name, done, total: bar.update(task, description=name, completed=done, total=total)
        )
    if as_json:
        print_json(dataclasses.asdict(report))
        return
    resumed = " (resumed)" if report.resumed else ""
    out.print(f"vectors moved from {report.source} to {report.target}{resumed} in {report.seconds:.1f} s")
    for name, counts in report.counts.items():
        out.print(
            f"  {name}: {counts['target']} vectors (SQL {counts['sql_indexed']}), {report.copied.get(name, 0)} copied, "
            f"{report.levelled.get(name, 0)} levelled after, top-10 agreement {report.agreement[name]:.0%}"
        )
    out.print(
        f"the store now uses {report.target}: restart running servers and workers; set RAGSTORE_VECTOR_BACKEND="
        f"{report.target} or leave it unset. The {report.source} index was left in place."
    )


@index_app.command("reembed")
def index_reembed(collection: str = typer.Option(..., "--collection", "-c")) -> None:
    """Embed again the chunks without a usable embedding (the remedy for `dimension_mismatch`)."""
    with opened_store() as store, domain_errors():
        result = store.reembed(collection)
    out.print(f"{collection}: {result['embedded']} texts embedded, {result['queued']} chunks re-indexed")


@index_app.command("status")
def index_status(as_json: bool = JsonOpt) -> None:
    """Outbox state and vectors per collection."""
    with opened_store() as store, domain_errors():
        data = {
            "backend": store.index.name,
            "outbox": store.outbox_counts(),
            "lexical": {"backend": store.lexical.name, "collections": store.lexical_status()},
            "collections": [
                {"name": c.name, "indexed_chunks": c.indexed_chunk_count, "chunks": c.chunk_count}
                for c in store.list_collections()
            ],
        }
    if as_json:
        print_json(data)
        return
    out.print(f"backend: {data['backend']}   outbox: {data['outbox']}")
    for c in data["collections"]:
        out.print(f"  {c['name']}: {c['indexed_chunks']}/{c['chunks']} chunks indexed")
    out.print(f"lexical: {data['lexical']['backend']}")
    for c in data["lexical"]["collections"]:
        state = "current" if c["current"] else f"stale (configured: {c['configured']})"
        out.print(f"  {c['collection']}: {c['analyzer']} {c['version']}, {state}")


# -- consistency -----------------------------------------------------------------------------------------------
@app.command()
def check(
    collection: str | None = typer.Option(None, "--collection", "-c", help="Default: every collection."),
    repair: bool = typer.Option(False, "--repair", help="Repair the safe kinds through the outbox."),
    history: bool = typer.Option(False, "--history", help="List past runs instead of checking."),
    as_json: bool = JsonOpt,
) -> None:
    """Compare SQL with the vector index: seven kinds of drift; exit 1 while problems remain (for cron)."""
    with opened_store() as store, domain_errors():
        if history:
            runs = store.consistency_history()
        else:
            report = store.check_consistency(collection, repair=repair, trigger="cli")
            assert report is not None
    if history:
        if as_json:
            print_json(runs)
            return
        table = Table("id", "started", "trigger", "state", "problems", "ms")
        for r in runs:
            table.add_row(
                str(r["id"]), r["started_at"], r["trigger"], r["state"], str(r["problems"]), str(r["duration_ms"])
            )
        out.print(table)
        return
    remaining = report["remaining"]
    if as_json:
        print_json(report)
    else:
        previous = report["previous"]
        table = Table("kind", "safe", "found", "remaining", "vs previous", title=f"consistency check {report['id']}")
        for kind, info in report["kinds"].items():
            change = report["changes"][kind] if report["changes"] else None
            table.add_row(
                kind,
                "yes" if info["safe"] else "no",
                str(report["counts"][kind]),
                str(remaining[kind]),
                "" if change is None else f"{change:+d}",
            )
        out.print(table)
        for f in report.get("remaining_findings", report["findings"]):
            ids = ", ".join(str(i) for i in f["ids"]) + (" …" if f["count"] > len(f["ids"]) else "")
            where = f" in {f['collection']}" if f["collection"] else ""
            out.print(f"- {f['kind']}{where}: {f['count']} {f['detail']}" + (f" [{ids}]" if ids else ""))
            out.print(f"  remedy: {f['remedy']}")
        if report.get("repairs"):
            out.print(f"repairs: {report['repairs']}")
        took = f"{report['duration_ms']:.0f} ms"
        since = f"; previous run {previous['id']} found {previous['problems']}" if previous else ""
        out.print(f"found {report['problems']}, remaining {sum(remaining.values())} ({took}{since})")
    if sum(remaining.values()):
        raise typer.Exit(EXIT_FAILED)


# -- backup ----------------------------------------------------------------------------------------------------
def _size(n: int | None) -> str:
    if n is None:
        return ""
    value = float(n)
    for unit in ("B", "KiB", "MiB"):
        if value < 1024:
            return f"{value:,.0f} {unit}" if unit == "B" else f"{value:,.1f} {unit}"
        value /= 1024
    return f"{value:,.1f} GiB"


@backup_app.command("create")
def backup_create(
    kind: str = typer.Option(
        "incremental", "--kind", "-k", help="full (every block written anew), incremental, or snapshot (database only)."
    ),
    note: str | None = typer.Option(None, "--note", help="A note kept with the backup."),
    as_json: bool = JsonOpt,
) -> None:
    """Back up the store at one point in time into RAGSTORE_BACKUP_REPOSITORY."""
    with opened_store() as store, domain_errors():
        made = store.backup(kind, note=note, trigger="cli")
    assert made is not None
    if as_json:
        print_json(made)
        return
    out.print(
        f"backup [bold]{made['id']}[/] ({made['kind']}): {made['documents']} documents, {made['chunks']} chunks, "
        f"{_size(made['logical_bytes'])} read, {_size(made['stored_bytes'])} stored, {made['seconds']:.1f} s"
    )


@backup_app.command("list")
def backup_list(as_json: bool = JsonOpt) -> None:
    """Every complete backup in the repository, oldest first, with its size and when it was last verified."""
    with opened_store() as store, domain_errors():
        backups = store.list_backups()
    if as_json:
        print_json(backups)
        return
    table = Table("id", "kind", "created", "docs", "chunks", "size", "stored", "verified", "note")
    for b in backups:
        verified = b["verified_at"] or ("FAILED" if b["verify"] else "")
        table.add_row(
            b["id"],
            b["kind"],
            b["created_at"],
            str(b["documents"]),
            str(b["chunks"]),
            _size(b["logical_bytes"]),
            _size(b["stored_bytes"]),
            verified or "",
            b["note"] or "",
        )
    out.print(table)


@backup_app.command("show")
def backup_show(backup_id: str = typer.Argument(..., help="A backup id from `backup list`.")) -> None:
    """One backup's manifest: versions, collections with their counts, files and checksums, timings (JSON)."""
    with opened_store() as store, domain_errors():
        print_json(store.show_backup(backup_id))


@backup_app.command("verify")
def backup_verify(
    backup_id: str | None = typer.Argument(None, help="Default: the newest backup."),
    every: bool = typer.Option(False, "--all", help="Verify every backup in the repository."),
    as_json: bool = JsonOpt,
) -> None:
    """Re-read every block, check every checksum, decrypt, restore into a temporary folder and check it."""
    with opened_store() as store, domain_errors():
        results = store.verify_backups(backup_id, every=every)
    if as_json:
        print_json(results)
        return
    for r in results:
        db_check = r.get("integrity_check") or f"pg_restore --list: {r.get('pg_restore_list')} entries"
        out.print(
            f"backup {r['backup_id']}: ok ({r['files']} files, {r['blocks']} blocks, {_size(r['bytes'])}; "
            f"{db_check}; counts {r['counts']}; {r['total_s']:.1f} s)"
        )


@backup_app.command("restore")
def backup_restore(
    backup_id: str = typer.Argument(..., help="A backup id from `backup list`."),
    to: str | None = typer.Option(
        None, "--to", help="Restore into this new folder (SQLite) or postgresql:// URL, leaving the live store alone."
    ),
    yes: bool = typer.Option(False, "--yes", "-y", help="Replace the live store without asking."),
    as_json: bool = JsonOpt,
) -> None:
    """Restore beside the live store, verify, then swap it in (the old files are kept aside); or write to --to."""
    from ragstore.service import restore_backup

    cfg = settings()
    if to is None and not yes:
        typer.confirm(
            f"Replace the live store ({cfg.sqlalchemy_url.split('?')[0]}) with backup {backup_id}? "
            "Stop the server and workers first.",
            abort=True,
        )
    with domain_errors():
        result = restore_backup(cfg, backup_id, to=to)
    if as_json:
        print_json(result)
        return
    where = "the live store" if result["live"] else result["target"]
    out.print(
        f"restored backup [bold]{backup_id}[/] into {where} in {result['total_s']:.1f} s "
        f"(index: {result['index']}); consistency check: {result['consistency']['problems']} problems"
    )


@backup_app.command("prune")
def backup_prune(
    dry_run: bool = typer.Option(False, "--dry-run", help="Say what would be removed; remove nothing."),
    as_json: bool = JsonOpt,
) -> None:
    """Apply the retention policy (RAGSTORE_BACKUP_KEEP_*) and delete blocks no kept backup needs."""
    with opened_store() as store, domain_errors():
        result = store.prune_backups(dry_run=dry_run)
    if as_json:
        print_json(result)
        return
    verb = "would remove" if dry_run else "removed"
    out.print(
        f"kept {len(result['kept'])} backups; {verb} {len(result['removed_backups'])} backups and "
        f"{result['removed_blocks']} blocks ({_size(result['freed_bytes'])} freed)"
    )


@backup_app.command("keygen")
def backup_keygen() -> None:
    """Print a new random BACKUP_ENCRYPTION_KEY (keep a copy away from the backups)."""
    from ragstore.backup import generate_key

    sys.stdout.write(generate_key() + "\n")


@dr_app.command("report")
def dr_report(as_json: bool = JsonOpt) -> None:
    """Disaster-recovery readiness: newest verified backup, chain, key, free space, estimated restore time."""
    with opened_store() as store, domain_errors():
        report = store.dr_report()
    if as_json:
        print_json(report)
    else:
        out.print(f"disaster recovery: [bold]{report['status']}[/] (repository {report['repository']})")
        newest, verified = report["newest"], report["newest_verified"]
        if newest:
            chain = "complete" if newest["chain_complete"] else f"BROKEN ({newest['missing_blocks']} blocks missing)"
            out.print(f"  newest backup: {newest['id']}, {newest['age_hours']:.1f} h old, chain {chain}")
        if verified:
            out.print(
                f"  newest verified: {verified['id']}, {verified['backup_age_hours']:.1f} h old, "
                f"verified {verified['verified_hours_ago']:.1f} h ago"
            )
        out.print(f"  key present: {'yes' if report['key_present'] else 'no'}; encrypted: {report['encrypted']}")
        free = report["free_bytes"]
        out.print(f"  free: data {_size(free['data_dir'])}, repository {_size(free['repository'])}")
        estimate = report["estimated_restore_s"]
        out.print(f"  estimated restore: {estimate['seconds']:.1f} s ({estimate['basis']})")
        for p in report["problems"]:
            out.print(f"  [red]problem:[/] {p}")
        for w in report["warnings"]:
            out.print(f"  [yellow]warning:[/] {w}")
    if report["status"] == "failing":
        raise typer.Exit(EXIT_FAILED)


# -- db --------------------------------------------------------------------------------------------------------
@db_app.command("grant-readonly")
def db_grant_readonly(
    role: str = typer.Argument(..., help="Role to create (if missing) and grant read access to."),
    login: bool = typer.Option(
        False, "--login", help="Create the role with LOGIN (default NOLOGIN: grant it to users)."
    ),
    as_json: bool = JsonOpt,
) -> None:
    """Create a read-only PostgreSQL role for reports: SELECT on every table and reporting view, nothing else."""
    from ragstore.db.engine import Database
    from ragstore.db.roles import grant_readonly

    with domain_errors():
        db = Database(settings())
        try:
            result = grant_readonly(db.engine, role, login=login)
        finally:
            db.dispose()
    if as_json:
        print_json(result)
        return
    created = "created and granted" if result["created"] == "yes" else "granted"
    out.print(f"role {role} {created} read-only access to {result['database']}.{result['schema']}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
