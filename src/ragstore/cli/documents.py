"""`ragstore documents`: the documents of one collection, each with its chunks on request."""

from __future__ import annotations

import json

import typer

from ragstore.cli.common import (
    CollectionOpt,
    JsonOpt,
    domain_errors,
    out,
    plain,
    print_json,
    print_listing,
    store_or_client,
)

__all__ = ["app"]

app = typer.Typer(help="List, show and delete documents.", no_args_is_help=True)


@app.command("list")
def documents_list(
    collection: str = CollectionOpt,
    limit: int = typer.Option(100, min=1, max=10_000),
    offset: int = typer.Option(0, min=0),
    as_json: bool = JsonOpt,
) -> None:
    """Documents of a collection."""
    with store_or_client(recover=False) as store, domain_errors():
        docs = store.documents.list(collection, limit=limit, offset=offset)
    print_listing(
        docs,
        ("id", "title", "source", "type", "chunks", "state"),
        lambda d: (
            str(d.id),
            d.title,
            d.source_uri,
            d.mime_type,
            str(d.chunk_count),
            d.index_state,
        ),
        as_json=as_json,
    )


@app.command("show")
def documents_show(
    document_id: int = typer.Argument(..., help="A document id from `documents list`."),
    collection: str = CollectionOpt,
    chunks: bool = typer.Option(False, help="Include the chunks."),
    as_json: bool = JsonOpt,
) -> None:
    """One document (and its chunks)."""
    with store_or_client(recover=False) as store, domain_errors():
        doc = store.documents.get(collection, document_id, with_chunks=chunks)
    if as_json:
        print_json(doc)
        return
    for key in ("id", "title", "source_uri", "mime_type", "size_bytes", "content_hash", "index_state", "chunk_count"):
        out.print(f"[bold]{key}[/]: {plain(getattr(doc, key))}", highlight=False)
    out.print(f"[bold]metadata[/]: {plain(json.dumps(doc.metadata, ensure_ascii=False))}", highlight=False)
    for c in doc.chunks or []:
        out.print(f"\n[dim]chunk {c.ordinal} ({c.token_count} tokens, {c.status})[/]\n{plain(c.text)}", highlight=False)


@app.command("delete")
def documents_delete(
    document_id: int = typer.Argument(..., help="A document id from `documents list`."),
    collection: str = CollectionOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Delete a document, its chunks and vectors."""
    with store_or_client() as store, domain_errors():
        store.documents.delete(collection, document_id)
    if as_json:
        print_json({"deleted": document_id, "collection": collection})
    else:
        out.print(f"deleted document {document_id} from [bold]{collection}[/]")
