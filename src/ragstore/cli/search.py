"""`ragstore ingest`, `ragstore search` and `ragstore analytics`: put documents in, get chunks out, see usage."""

from __future__ import annotations

import json
from typing import Any

import typer

from ragstore.cli.common import (
    EXIT_BAD_INPUT,
    CollectionOpt,
    JsonOpt,
    domain_errors,
    err,
    fail,
    opened_store,
    out,
    plain,
    print_json,
    store_or_client,
)

__all__ = ["analytics", "search"]


def _json_option(value: str | None, option: str) -> Any:
    if value is None:
        return None
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        fail(f"{option} is not valid JSON: {exc.msg}", EXIT_BAD_INPUT)


# Every option is a field of SearchRequest, with that field's description as its help (numpy, which the
# schemas load, must not be imported for --help, so the texts are written out; test_cli checks they agree).
def search(
    query: str | None = typer.Argument(None, help="Text to search for (embedded, and analysed)"),
    collection: str = CollectionOpt,
    k: int = typer.Option(10, "-k", "--k", help="How many results"),
    mode: str | None = typer.Option(
        None, "--mode", "-m", help="Default: the server's RAGSTORE_SEARCH_MODE (hybrid unless configured otherwise)"
    ),
    filter_json: str | None = typer.Option(
        None,
        "--filter",
        help="Document fields or metadata keys: a value, a list (any of), or"
        " {$eq,$ne,$gt,$gte,$lt,$lte,$in,$nin,$exists}; $and and $or take lists of filters, $not one filter"
        ' (README: Filters) (JSON, e.g. \'{"lang": "ko", "year": {"$gte": 2024}}\')',
    ),
    vector_json: str | None = typer.Option(
        None, "--vector", help="A query vector of the collection's dimension (a JSON list)"
    ),
    offset: int = typer.Option(0, "--offset", help="Skip this many results"),
    cursor: str | None = typer.Option(None, "--cursor", help="A previous response's next_cursor"),
    min_score: float | None = typer.Option(
        None, "--min-score", help="Leave out results scoring below this (the mode's score)"
    ),
    explain: bool = typer.Option(False, "--explain", help="Give each hit its dense and lexical rank and score"),
    rrf_k: int | None = typer.Option(None, "--rrf-k", help="Reciprocal rank fusion's k (hybrid)"),
    dense_weight: float | None = typer.Option(None, "--dense-weight", help="Hybrid: the weight of the dense ranking"),
    lexical_weight: float | None = typer.Option(
        None, "--lexical-weight", help="Hybrid: the weight of the lexical ranking"
    ),
    min_coverage: float | None = typer.Option(
        None,
        "--min-coverage",
        help="Hybrid with rrf: the share of the query's weighted terms a lexical hit must match",
    ),
    fusion: str | None = typer.Option(
        None,
        "--fusion",
        help="Hybrid: bridge (two embeddings and the cross-language expanded lexical score, standardised"
        " and added) or rrf (reciprocal rank fusion); default: the server's RAGSTORE_HYBRID_FUSION",
    ),
    as_json: bool = JsonOpt,
) -> None:
    """Ranked chunks with their document, score and text (a query text, a --vector, or both)."""
    from pydantic import ValidationError
    from rich.table import Table

    from ragstore.schemas import SearchRequest  # here, not at the top: --help must not load numpy

    fields = {
        "query": query,
        "vector": _json_option(vector_json, "--vector"),
        "k": k,
        "mode": mode,
        "filter": _json_option(filter_json, "--filter"),
        "offset": offset,
        "cursor": cursor,
        "min_score": min_score,
        "explain": explain,
        "rrf_k": rrf_k,
        "dense_weight": dense_weight,
        "lexical_weight": lexical_weight,
        "min_coverage": min_coverage,
        "fusion": fusion,
    }
    try:
        request = SearchRequest.model_validate(fields)
    except ValidationError as exc:
        # The query is the argument QUERY (the same limit as the API's: 10,000 characters); the rest are options.
        def named(loc: tuple[int | str, ...]) -> str:
            return "QUERY" if loc == ("query",) else "--" + ".".join(map(str, loc)).replace("_", "-")

        problems = "; ".join(f"{named(e['loc'])}: {e['msg']}" for e in exc.errors())
        fail(problems, EXIT_BAD_INPUT)
    with store_or_client() as store, domain_errors():
        result = store.search.run(collection, request)
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
        snippet = plain(hit.text if len(hit.text) <= 300 else hit.text[:300] + "…")
        document = f"{plain(hit.title)}\n[dim]{plain(hit.source_uri)}#{hit.ordinal}[/]"
        row = [str(rank), f"{hit.score:.4g}", document, snippet]
        if explain and hit.explain is not None:
            row.append(f"{hit.explain.get('dense_rank') or '-'} / {hit.explain.get('lexical_rank') or '-'}")
        table.add_row(*row)
    out.print(table)
    if result.next_cursor:
        err.print(f"more: --cursor {result.next_cursor}")


def analytics(
    collection_arg: str | None = typer.Argument(
        None, metavar="[COLLECTION]", hidden=True, help="Old spelling of --collection."
    ),
    collection: str | None = typer.Option(None, "--collection", "-c", help="The collection to summarise."),
    days: int = typer.Option(7, "--days", help="The window, in days."),
    as_json: bool = JsonOpt,
) -> None:
    """What was searched, how fast, how often the cache answered, and which chunks users found relevant."""
    from rich.table import Table

    name = collection or collection_arg
    if name is None:
        fail("Missing option '--collection' / '-c'.", EXIT_BAD_INPUT)
    with opened_store() as store, domain_errors():
        data = store.analytics.summary(name, days=days)
    if as_json:
        print_json(data)
        return
    q = data.queries
    out.print(
        f"{q.total} searches in {days} days; by mode {q.by_mode}; cache hit rate {q.cache_hit_rate}; "
        f"{q.zero_results} without results; latency ms {q.latency_ms.model_dump()}"
    )
    fb = data.feedback
    out.print(f"feedback: {fb.relevant} relevant, {fb.irrelevant} not (precision {fb.precision})")
    table = Table(title="top queries")
    table.add_column("query")
    table.add_column("count", justify="right")
    table.add_column("avg results", justify="right")
    for row in data.top_queries:
        table.add_row(plain(row.query), str(row.count), str(row.avg_results))
    out.print(table)
