"""LangChain documents to ragstore inputs and back.

One LangChain document is one ragstore document of exactly one chunk, carrying the vector the LangChain
embedding made: ragstore neither re-splits the text nor embeds it. The LangChain id is the document's
`source_uri`, so adding under an id that exists replaces that document (ragstore's upsert by source).
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Sequence
from typing import Any

import numpy as np
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings

from ragstore.schemas import ChunkInput, DocumentInfo, DocumentInput, SearchHit

__all__ = ["assign_ids", "document_input", "embedding_model_name", "from_hit", "from_info"]


def embedding_model_name(embedding: Embeddings) -> str:
    """The name recorded as the collection's `embedding_model`: the embedding's own model when it names one.

    Recording it makes ragstore refuse (Conflict) to mix vectors of two embeddings in one collection, and
    tells ragstore's search that it cannot embed queries for this collection itself.
    """
    for attribute in ("model", "model_name", "model_id"):
        value = getattr(embedding, attribute, None)
        if isinstance(value, str) and value:
            return f"langchain:{value}"
    return f"langchain:{type(embedding).__name__}"


def assign_ids(documents: Sequence[Document], ids: Sequence[str | None] | None) -> list[str]:
    """One string id per document: the `ids` given (they win over `Document.id`), else the document's own,
    else a new uuid4 (the documents themselves are never changed)."""
    if ids is not None and len(ids) != len(documents):
        raise ValueError(f"{len(ids)} ids given for {len(documents)} documents")
    chosen = list(ids) if ids is not None else [d.id for d in documents]
    return [str(i) if i is not None and str(i) else str(uuid.uuid4()) for i in chosen]


def document_input(document: Document, source: str, vector: Sequence[float]) -> DocumentInput:
    """The ragstore document for one LangChain document: one chunk, its vector, the metadata as given."""
    return DocumentInput(
        source_uri=source,
        metadata=copy.deepcopy(dict(document.metadata)),
        # A float32 array: the facade takes it as it is (validating a list costs a check per float), and the
        # HTTP client sends it as a JSON list.
        chunks=[ChunkInput(text=document.page_content, vector=np.asarray(vector, dtype=np.float32))],
    )


def from_hit(hit: SearchHit) -> Document:
    return Document(id=hit.source_uri, page_content=hit.text, metadata=_own(hit.metadata))


def from_info(info: DocumentInfo) -> Document:
    """A document read back by id: its one chunk's text (all chunks' joined, for one ragstore split)."""
    chunks = sorted(info.chunks or [], key=lambda c: c.ordinal)
    text = "\n\n".join(c.text for c in chunks) if len(chunks) != 1 else chunks[0].text
    return Document(id=info.source_uri, page_content=text, metadata=_own(info.metadata))


def _own(metadata: dict[str, Any]) -> dict[str, Any]:
    """A copy, so a caller changing a returned document's metadata cannot reach a cached search result."""
    return copy.deepcopy(metadata)
