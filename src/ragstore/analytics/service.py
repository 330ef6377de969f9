"""The analytics sub-facade, `store.analytics`: users' judgements of results, and what the query log says.

It takes the collection lookup as a function so that analytics, a low feature, needs no other feature's code.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from ragstore.analytics.recorder import QueryRecorder
from ragstore.analytics.summary import summarise
from ragstore.db.engine import Database
from ragstore.db.models import ChunkAnalytics, DocumentChunk, SearchFeedback
from ragstore.errors import InvalidInput, NotFound
from ragstore.schemas import AnalyticsSummary
from ragstore.valid_text import INT64_MAX, checked_text

__all__ = ["AnalyticsService"]

MAX_QUERY = 10_000
MAX_COMMENT = 2_000


@dataclass(kw_only=True, slots=True)
class AnalyticsService:
    """`wiring.build` makes `collection_id` for it; `db` and `recorder` are the store's components."""

    db: Database
    recorder: QueryRecorder
    collection_id: Callable[[str], int]

    def feedback(
        self,
        collection: str,
        *,
        query: str,
        chunk_id: int,
        relevant: bool,
        mode: str | None = None,
        comment: str = "",
    ) -> int:
        """A user's judgement of one result of `query`, stored and counted on the chunk in one transaction.

        The chunk must belong to the collection. Returns the feedback id.
        """
        collection_id = self.collection_id(collection)
        if not isinstance(query, str) or not query.strip() or len(query) > MAX_QUERY:
            raise InvalidInput(f"query must be a non-empty text of at most {MAX_QUERY} characters")
        if not isinstance(relevant, bool):
            raise InvalidInput(f"relevant must be true or false, got {relevant!r}")
        checked_text(query, "query")
        checked_text(comment, "comment")
        if isinstance(chunk_id, bool) or not isinstance(chunk_id, int) or not 1 <= chunk_id <= INT64_MAX:
            raise InvalidInput(f"chunk_id must be an integer from 1 to 2^63-1, got {chunk_id!r}")
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
            insert_ = (sqlite_insert if self.db.is_sqlite else pg_insert)(ChunkAnalytics).values(
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

        return self.db.write(unit)

    def summary(self, collection: str, *, days: int = 7, top: int = 10) -> AnalyticsSummary:
        """The query log, feedback and chunk counters of a collection, summarised over the last `days`."""
        if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= 3650:
            raise InvalidInput(f"days must be an integer from 1 to 3650, got {days!r}")
        if isinstance(top, bool) or not isinstance(top, int) or not 1 <= top <= 100:
            raise InvalidInput(f"top must be an integer from 1 to 100, got {top!r}")
        collection_id = self.collection_id(collection)
        self.recorder.flush()
        return summarise(self.db, collection_id, collection, days=days, top=top)
