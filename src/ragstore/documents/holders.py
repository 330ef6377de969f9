"""What a batch of documents meets in its collection before it is stored: the active documents that hold the
same content (a `duplicate`, or an `unchanged` when the source is the same) and the sources that already have
an active document (a replacement). Read without the source locks: the write reads its replacements again."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import select
from sqlalchemy.orm import Session

from ragstore.db.batches import in_batches
from ragstore.db.models import Document, DocumentStatus
from ragstore.text.loaders import LoadedDocument

__all__ = ["Holder", "PreparedDocument", "holders"]


class Holder(NamedTuple):
    """An active document holding a content: what decides `unchanged`, `duplicate` or a replacement."""

    document_id: int
    title: str
    source_uri: str
    metadata: dict[str, Any]

    def holds_as_is(self, doc: PreparedDocument) -> bool:
        """Whether storing `doc` would change nothing: the same source, title and metadata (text and chunks
        are the same by content hash). A metadata edit alone must replace the document, or an upsert by id
        that only edits metadata would be lost."""
        return (
            self.source_uri == doc.loaded.source_uri
            and self.title == doc.loaded.title
            and _canonical(self.metadata) == _canonical(doc.loaded.metadata)
        )


def _canonical(value: dict[str, Any]) -> str:
    """JSON text, compared instead of the dicts: Python has True == 1 == 1.0, the stored JSON does not."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


@dataclass
class PreparedDocument:
    """A document ready to store: its chunks decided, its vectors known or to be looked up."""

    loaded: LoadedDocument
    chunk_texts: list[str] = field(default_factory=list)
    vectors: NDArray[np.float32] | None = None  # one per chunk, when the caller brings its own
    content_hash: str = ""


def holders(s: Session, collection_id: int, docs: list[PreparedDocument]) -> tuple[dict[str, list[Holder]], set[str]]:
    """(content hash -> the active documents holding it, oldest first; the batch's sources that have an active
    document)."""
    existing: dict[str, list[Holder]] = {}
    for part in in_batches(list({d.content_hash for d in docs})):
        for h, i, t, src, meta in s.execute(
            select(Document.content_hash, Document.id, Document.title, Document.source_uri, Document.metadata_)
            .where(
                Document.collection_id == collection_id,
                Document.content_hash.in_(part),
                Document.status == DocumentStatus.ACTIVE,
            )
            .order_by(Document.id)
        ):
            existing.setdefault(h, []).append(Holder(int(i), t, src, dict(meta or {})))
    active: set[str] = set()
    for names in in_batches(list({d.loaded.source_uri for d in docs})):
        active.update(
            s.scalars(
                select(Document.source_uri).where(
                    Document.collection_id == collection_id,
                    Document.source_uri.in_(names),
                    Document.status == DocumentStatus.ACTIVE,
                )
            )
        )
    return existing, active
