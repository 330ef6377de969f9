"""`ragstore collections`: list, create and delete collections (the collection is this group's argument)."""

from __future__ import annotations

import typer

from ragstore.cli.common import (
    JsonOpt,
    YesOpt,
    confirm_destructive,
    domain_errors,
    opened_store,
    out,
    print_json,
    print_listing,
)

__all__ = ["app"]

app = typer.Typer(help="List, create and delete collections.", no_args_is_help=True)


@app.command("list")
def collections_list(as_json: bool = JsonOpt) -> None:
    """Collections with their document and chunk counts."""
    with opened_store(recover=False) as store, domain_errors():
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
    with opened_store() as store, domain_errors():
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
    with opened_store(recover=False) as store, domain_errors():
        store.collections.get(name)  # a name that does not exist is exit 2 at once, not a question first
    confirm_destructive(f"Delete collection {name!r} and all its documents?", yes)
    with opened_store() as store, domain_errors():
        store.collections.delete(name)
    if as_json:
        print_json({"deleted": name})
    else:
        out.print(f"deleted collection [bold]{name}[/]")
