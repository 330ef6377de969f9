"""Which documents a bulk call names: a list of sources, a filter, both, or (said outright) every one.

The frameworks ragstore plugs into address documents by their own string ids (LangChain's ids and
LlamaIndex's node ids are ragstore's `source_uri`) or by metadata (LlamaIndex's `ref_doc_id`), never by
ragstore's integer ids; so reading and deleting by source or filter is one call, not one per document.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Select, select

from ragstore.db.batches import in_batches
from ragstore.db.chunk_vectors import vectors_for_chunks
from ragstore.db.filter_spec import parse_filter
from ragstore.db.filters import compile_filter
from ragstore.db.models import Document, DocumentChunk, DocumentStatus
from ragstore.db.visibility import chunk_visible
from ragstore.errors import InvalidInput
from ragstore.schemas import ChunkVector
from ragstore.valid_text import INT64_MAX, checked_json, checked_text

if TYPE_CHECKING:
    from ragstore.documents.catalog import Catalog

__all__ = ["MAX_CHUNK_IDS", "MAX_SOURCES", "Selection", "chunk_vectors"]

MAX_SOURCES = 10_000  # sources one call may name (each a bound parameter, sliced under SQLite's limit)
MAX_SOURCE_CHARS = 2048  # as DocumentInput.source_uri
MAX_CHUNK_IDS = 10_000  # chunk ids one vectors call may name


@dataclass(frozen=True, slots=True)
class Selection:
    """Documents named by source and/or filter (both: those that pass both), or every document."""

    sources: tuple[str, ...] | None = None
    filter: dict[str, Any] | None = None
    everything: bool = False

    @classmethod
    def of(
        cls,
        *,
        sources: Sequence[str] | None = None,
        filter: dict[str, Any] | None = None,
        everything: bool = False,
        required: bool = False,
    ) -> Selection:
        """A checked selection; `required` (a delete) refuses one that names nothing in particular, so that
        every document goes only when the caller says `everything`."""
        if everything and (sources is not None or filter is not None):
            raise InvalidInput("give everything=true alone, or sources and/or a filter")
        if isinstance(sources, str) or (sources is not None and not isinstance(sources, Sequence)):
            raise InvalidInput("sources must be a list of source_uri strings")
        if sources is not None and len(sources) > MAX_SOURCES:
            raise InvalidInput(f"sources names {len(sources):,} documents; at most {MAX_SOURCES:,} a call")
        for i, source in enumerate(sources or ()):
            checked_text(source, f"sources[{i}]")
            if len(source) > MAX_SOURCE_CHARS:
                raise InvalidInput(f"sources[{i}] is over {MAX_SOURCE_CHARS} characters")
        if filter is not None:
            checked_json(filter, "filter")
            parse_filter(filter)  # names the first bad part of the filter
        if required and not everything and sources is None and not filter:
            raise InvalidInput("name the documents: sources, a non-empty filter, or everything=true")
        return cls(tuple(sources) if sources is not None else None, filter, everything)

    def queries(self, collection_id: int, *, postgres: bool) -> Iterator[Select[Document]]:
        """The SELECTs of the active documents selected, one per slice of sources."""
        base = select(Document).where(Document.collection_id == collection_id, Document.status == DocumentStatus.ACTIVE)
        condition = compile_filter(self.filter, postgres=postgres, collection_id=collection_id) if self.filter else None
        if condition is not None:
            base = base.where(condition)
        if self.sources is None:
            yield base
            return
        for part in in_batches(list(dict.fromkeys(self.sources))):
            yield base.where(Document.source_uri.in_(part))

    def described(self) -> dict[str, Any]:
        """What the audit row says of the selection: bounded, however many sources were named."""
        shown: dict[str, Any] = {"everything": self.everything}
        if self.sources is not None:
            shown["sources"] = len(self.sources)
            shown["first_sources"] = [s[:200] for s in self.sources[:5]]
        if self.filter is not None:
            shown["filter"] = self.filter if len(repr(self.filter)) <= 2000 else "(over 2000 characters)"
        return shown


def chunk_vectors(catalog: Catalog, collection: str, chunk_ids: Sequence[int]) -> list[ChunkVector]:
    """The vectors SQL holds for these chunks of `collection`, in the order asked, leaving out ids that are not
    a searchable chunk of it (so no caller reads another collection's vectors by guessing ids)."""
    if isinstance(chunk_ids, str | bytes) or not isinstance(chunk_ids, Sequence):
        raise InvalidInput("chunk_ids must be a list of integers")
    if len(chunk_ids) > MAX_CHUNK_IDS:
        raise InvalidInput(f"chunk_ids names {len(chunk_ids):,} chunks; at most {MAX_CHUNK_IDS:,} a call")
    for i, value in enumerate(chunk_ids):
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= INT64_MAX:
            raise InvalidInput(f"chunk_ids[{i}] must be an integer from 1 to 2^63-1")
    with catalog.db.read() as s:
        coll = catalog.get_row(s, collection)
        rows: list[tuple[int, str]] = []
        for part in in_batches(list(dict.fromkeys(chunk_ids))):
            rows += [
                (int(i), h)
                for i, h in s.execute(
                    select(DocumentChunk.id, DocumentChunk.content_hash)
                    .join(Document, Document.id == DocumentChunk.document_id)
                    .where(DocumentChunk.id.in_(part), DocumentChunk.collection_id == coll.id, chunk_visible())
                )
            ]
        ids, vectors = vectors_for_chunks(s, coll.embedding_model, coll.dimension, rows)
    found = {int(i): row for i, row in zip(ids, vectors, strict=True)}
    return [ChunkVector(chunk_id=i, vector=found[i].tolist()) for i in dict.fromkeys(chunk_ids) if i in found]
