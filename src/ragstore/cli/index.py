"""`ragstore index`: the derived indexes (vector and lexical): status, rebuild from SQL, move, re-analyse."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import typer

from ragstore.cli.common import (
    CollectionOpt,
    JsonOpt,
    OptionalCollectionOpt,
    domain_errors,
    opened_store,
    out,
    plain,
    print_json,
    progress_bar,
)

if TYPE_CHECKING:
    from ragstore.schemas import CollectionTuning, TuningReport
    from ragstore.service import RagStore

__all__ = ["app"]

app = typer.Typer(
    help="The vector and lexical indexes: status, rebuild from the database, re-analyse, tune.", no_args_is_help=True
)


@app.command("status")
def index_status(as_json: bool = JsonOpt) -> None:
    """Outbox state and vectors per collection."""
    with opened_store() as store, domain_errors():
        status = store.index.status()
    if as_json:
        print_json(status)
        return
    out.print(f"backend: {status.backend}   outbox: {status.outbox.model_dump()}")
    for c in status.collections:
        out.print(f"  {c.name}: {c.indexed_chunks}/{c.chunks} chunks indexed")
    out.print(f"lexical: {status.lexical.backend}")
    for lex in status.lexical.collections:
        state = "current" if lex.current else f"stale (configured: {lex.configured})"
        out.print(f"  {lex.collection}: {lex.analyzer} {lex.version}, {state}")


Progress = Callable[[int, int], None]
PassFn = Callable[["RagStore", str | None, Progress], dict[str, int]]


def _collection_pass(title: str, *, json_key: str, unit: str) -> Callable[[PassFn], Callable[..., None]]:
    """Make a command of a pass over every collection (or `-c` one): a progress bar, then a count per
    collection, or `{json_key: {collection: count}}` with --json. `rebuild` and `relex` are such passes; the
    decorated function says only what the pass runs, and its docstring is the command's help."""

    def decorate(run: PassFn) -> Callable[..., None]:
        def command(collection: str | None = OptionalCollectionOpt, as_json: bool = JsonOpt) -> None:
            with opened_store() as store, domain_errors(), progress_bar(title, disable=as_json) as bar:
                task = bar.add_task(title, total=None)
                counts = run(store, collection, lambda done, total: bar.update(task, completed=done, total=total))
            if as_json:
                print_json({json_key: counts})
                return
            for name, n in counts.items():
                out.print(f"{name}: {n} {unit}")

        command.__name__, command.__doc__ = run.__name__, run.__doc__
        return command

    return decorate


@app.command("rebuild")
@_collection_pass("rebuilding", json_key="vectors", unit="vectors")
def index_rebuild(store: RagStore, collection: str | None, progress: Progress) -> dict[str, int]:
    """Rebuild the vector index from the chunks and embeddings in the database (no embedding calls)."""
    return store.index.rebuild(collection, progress=progress).vectors


@app.command("relex")
@_collection_pass("analysing", json_key="chunks_analysed", unit="chunks analysed")
def index_relex(store: RagStore, collection: str | None, progress: Progress) -> dict[str, int]:
    """Rebuild the lexical index (the analysed terms) with the configured analyzer (RAGSTORE_LEXICAL_ANALYZER)."""
    return store.index.relex(collection, progress=progress).chunks_analysed


@app.command("migrate")
def index_migrate(
    to: str = typer.Option(
        ..., "--to", help="A persistent backend of the registry, with its settings (an unknown name lists them)."
    ),
    as_json: bool = JsonOpt,
) -> None:
    """Move the vectors to another backend: rebuild from SQL, verify counts and queries, switch; resumes."""
    with opened_store() as store, domain_errors(), progress_bar(disable=as_json) as bar:
        task = bar.add_task(f"copying to {to}", total=None)
        report = store.index.migrate(
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


@app.command("reembed")
def index_reembed(collection: str = CollectionOpt, as_json: bool = JsonOpt) -> None:
    """Embed again the chunks without a usable embedding (the remedy for `dimension_mismatch`)."""
    with opened_store() as store, domain_errors():
        result = store.index.reembed(collection)
    if as_json:
        print_json({"collection": collection, **result.model_dump()})
    else:
        out.print(f"{collection}: {result.embedded} texts embedded, {result.queued} chunks re-indexed")


@app.command("tune")
def index_tune(
    collection: str | None = OptionalCollectionOpt,
    stored: bool = typer.Option(False, "--stored", help="Show what is stored and what is due; measure nothing."),
    as_json: bool = JsonOpt,
) -> None:
    """Measure each collection's search breadth (HNSW ef_search) for RAGSTORE_TARGET_RECALL now, keep and use it."""
    with opened_store() as store, domain_errors():
        report = store.index.tuning(collection) if stored else store.index.tune(collection)
    if as_json:
        print_json(report)
        return
    _print_tuning(report)


def _print_tuning(report: TuningReport) -> None:
    out.print(
        f"{report.backend}: each collection searches at the breadth that reaches recall@10 {report.target_recall:g}"
    )
    for c in report.collections:
        out.print(_tuning_line(c, report.backend), highlight=False)
        if c.curve:
            out.print(_curve_table(c))


def _tuning_line(c: CollectionTuning, backend: str) -> str:
    name = plain(c.collection)
    if c.state == "exact":
        return f"[bold]{name}[/]: {c.vectors:,} vectors, searched exactly: nothing to tune"
    if c.state == "not_tunable":
        return f"[bold]{name}[/]: {c.vectors:,} vectors; this backend exposes no search breadth: not tunable"
    if c.state == "untuned":
        return f"[bold]{name}[/]: {c.vectors:,} vectors at the default ef_search {c.ef_search}, not measured yet"
    reached = "meets the target" if c.met else "[yellow]short of the target: the graph itself tops out below it[/]"
    if not c.met and backend == "embedded":  # its graph is built with the settings: a rebuild applies new ones
        reached += (
            "; a denser graph reaches further (RAGSTORE_HNSW_EF_CONSTRUCTION=128 took 1M vectors from 0.935 to "
            "0.994; RAGSTORE_HNSW_M less so; then "
            f"`ragstore index rebuild -c {name}`)"
        )
    when = f"measured now in {c.seconds:.1f} s" if c.state == "tuned" else f"measured {c.tuned_at:%Y-%m-%d %H:%M} UTC"
    line = (
        f"[bold]{name}[/]: ef_search [bold]{c.ef_search}[/], recall@10 {c.recall:.4f} on {c.sample} queries "
        f"({reached}); {c.vectors_measured:,} vectors, {when}"
    )
    return line + (f"; due again: {plain(c.due)}" if c.due else "")


def _curve_table(c: CollectionTuning) -> Any:
    from rich.table import Table

    table = Table("ef", "recall@10", "± s.e.", "p50 µs", "", box=None, padding=(0, 2))
    for point in c.curve:
        chosen = point.ef == c.ef_search
        table.add_row(
            str(point.ef),
            f"{point.recall:.4f}",
            f"{point.stderr:.4f}",
            f"{point.p50_us:,.0f}",
            "<- chosen" if chosen else "",
            style="bold" if chosen else None,
        )
    return table
