"""What a batch of documents meets in its collection before it is stored: the active documents that hold the
same content (a `duplicate`, or an `unchanged` when the source is the same) and the sources that already have
an active document (a replacement). Read without the source locks: the write reads its replacements again."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import select
from sqlalchemy.orm import Session

from ragstore.db.batches import in_batches
from ragstore.db.models import Document, DocumentStatus
from ragstore.text.loaders import LoadedDocument

__all__ = ["PreparedDocument", "holders"]


@dataclass
class PreparedDocument:
    """A document ready to store: its chunks decided, its vectors known or to be looked up."""

    loaded: LoadedDocument
    chunk_texts: list[str] = field(default_factory=list)
    vectors: NDArray[np.float32] | None = None  # one per chunk, when the caller brings its own
    content_hash: str = ""


def holders(
    s: Session, collection_id: int, docs: list[PreparedDocument]
) -> tuple[dict[str, list[tuple[int, str, str]]], set[str]]:
    """(content hash -> [(document id, title, source)] of the active documents holding it, oldest first;
    the batch's sources that have an active document)."""
    existing: dict[str, list[tuple[int, str, str]]] = {}
    for part in in_batches(list({d.content_hash for d in docs})):
        for h, i, t, src in s.execute(
            select(Document.content_hash, Document.id, Document.title, Document.source_uri)
            .where(
                Document.collection_id == collection_id,
                Document.content_hash.in_(part),
                Document.status == DocumentStatus.ACTIVE,
            )
            .order_by(Document.id)
        ):
            existing.setdefault(h, []).append((int(i), t, src))
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
