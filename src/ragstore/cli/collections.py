"""`ragstore collections`: list, show, create and delete collections (the collection is this group's argument)."""

from __future__ import annotations

import typer

from ragstore.cli.common import (
    JsonOpt,
    YesOpt,
    confirm_destructive,
    domain_errors,
    out,
    plain,
    print_json,
    print_listing,
    store_or_client,
)

__all__ = ["app"]

app = typer.Typer(help="List, create and delete collections.", no_args_is_help=True)


@app.command("list")
def collections_list(as_json: bool = JsonOpt) -> None:
    """Collections with their document and chunk counts."""
    with store_or_client(recover=False) as store, domain_errors():
        rows = store.collections.list()
    print_listing(
        rows,
        ("name", "model", "dim", "documents", "chunks", "indexed"),
        lambda c: (
            c.name,
            c.embedding_model,
            str(c.dimension),
            str(c.document_count),
            str(c.chunk_count),
            str(c.indexed_chunk_count),
        ),
        as_json=as_json,
    )


@app.command("show")
def collections_show(name: str = typer.Argument(..., help="The collection."), as_json: bool = JsonOpt) -> None:
    """One collection: its settings and counts."""
    with store_or_client(recover=False) as store, domain_errors():
        info = store.collections.get(name)
    if as_json:
        print_json(info)
        return
    for key in ("name", "description", "embedding_model", "dimension", "metric"):
        out.print(f"[bold]{key}[/]: {plain(getattr(info, key))}", highlight=False)
    for key in ("document_count", "chunk_count", "indexed_chunk_count", "created_at", "updated_at"):
        out.print(f"[bold]{key}[/]: {getattr(info, key)}", highlight=False)


@app.command("create")
def collections_create(
    name: str = typer.Argument(..., help="The new collection's name."),
    description: str = typer.Option("", help="Free text."),
    embedding_model: str | None = typer.Option(
        None, help="Default: the configured embedder; another name means you bring vectors."
    ),
    dimension: int | None = typer.Option(None, help="Required with a custom embedding model."),
    exist_ok: bool = typer.Option(
        False, "--exist-ok", help="A collection of this name with the same settings is fine (exit 0)."
    ),
    as_json: bool = JsonOpt,
) -> None:
    """Create a collection (exit 2 if it exists, unless --exist-ok and its settings are the same)."""
    with store_or_client() as store, domain_errors():
        info = store.collections.create(
            name, description=description, embedding_model=embedding_model, dimension=dimension, exist_ok=exist_ok
        )
    if as_json:
        print_json(info)
    else:
        out.print(f"collection [bold]{info.name}[/] ({info.embedding_model}, {info.dimension}-d)")


@app.command("delete")
def collections_delete(
    name: str = typer.Argument(..., help="The collection to delete."),
    yes: bool = YesOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Delete a collection with all its documents and vectors (asks first; exit 3 if not confirmed)."""
    with store_or_client(recover=False) as store, domain_errors():
        store.collections.get(name)  # a name that does not exist is exit 2 at once, not a question first
    confirm_destructive(f"Delete collection {name!r} and all its documents?", yes)
    with store_or_client() as store, domain_errors():
        store.collections.delete(name)
    if as_json:
        print_json({"deleted": name})
    else:
        out.print(f"deleted collection [bold]{name}[/]")
