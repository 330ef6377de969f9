"""A user's judgement of a search result: stored, and counted on the chunk in the same transaction."""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from ragstore.db.engine import Database
from ragstore.db.models import ChunkAnalytics, DocumentChunk, SearchFeedback
from ragstore.errors import InvalidInput, NotFound

__all__ = ["record_feedback"]

MAX_QUERY = 10_000
MAX_COMMENT = 2_000


def record_feedback(
    db: Database,
    collection_id: int,
    collection: str,
    *,
    query: str,
    chunk_id: int,
    relevant: bool,
    mode: str | None = None,
    comment: str = "",
) -> int:
    """Store one judgement; the chunk must belong to the collection. Returns the feedback id."""
    if not isinstance(query, str) or not query.strip() or len(query) > MAX_QUERY:
        raise InvalidInput(f"query must be a non-empty text of at most {MAX_QUERY} characters")
    if not isinstance(relevant, bool):
        raise InvalidInput(f"relevant must be true or false, got {relevant!r}")
    if isinstance(chunk_id, bool) or not isinstance(chunk_id, int):
        raise InvalidInput(f"chunk_id must be an integer, got {chunk_id!r}")
    if len(comment) > MAX_COMMENT:
        raise InvalidInput(f"comment must be at most {MAX_COMMENT} characters")

    def unit(s: Session) -> int:
        found = s.execute(
            select(DocumentChunk.document_id).where(
                DocumentChunk.id == chunk_id, DocumentChunk.collection_id == collection_id
            )
        ).first()
        if found is None:
            raise NotFound(f"chunk {chunk_id} is not in collection {collection!r}", details={"chunk_id": chunk_id})
        row = SearchFeedback(
            collection_id=collection_id,
            query=query,
            chunk_id=chunk_id,
            document_id=int(found[0]),
            relevant=relevant,
            mode=mode,
            comment=comment,
        )
        s.add(row)
        counter = ChunkAnalytics.relevant_count if relevant else ChunkAnalytics.irrelevant_count
        insert_ = (sqlite_insert if db.is_sqlite else pg_insert)(ChunkAnalytics).values(
            chunk_id=chunk_id,
            collection_id=collection_id,
            returned_count=0,
            relevant_count=0,
            irrelevant_count=0,
        )
        s.execute(insert_.on_conflict_do_nothing())
        s.execute(update(ChunkAnalytics).where(ChunkAnalytics.chunk_id == chunk_id).values({counter: counter + 1}))
        s.flush()
        return int(row.id)

    return db.write(unit)
