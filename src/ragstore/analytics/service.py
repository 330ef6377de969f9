"""The analytics sub-facade, `store.analytics`: users' judgements of results, and what the query log says.

It takes the collection lookup as a function so that analytics, a low feature, needs no other feature's code.
"""

from __future__ import annotations

from collections.abc import Callable

from ragstore.analytics.feedback import record_feedback
from ragstore.analytics.recorder import QueryRecorder
from ragstore.analytics.summary import summarise
from ragstore.db.engine import Database
from ragstore.errors import InvalidInput
from ragstore.schemas import AnalyticsSummary

__all__ = ["AnalyticsService"]


class AnalyticsService:
    def __init__(self, db: Database, recorder: QueryRecorder, collection_id: Callable[[str], int]) -> None:
        self._db = db
        self._recorder = recorder
        self._collection_id = collection_id

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
        """A user's judgement of one result of `query`; returns the feedback id."""
        collection_id = self._collection_id(collection)
        return record_feedback(
            self._db,
            collection_id,
            collection,
            query=query,
            chunk_id=chunk_id,
            relevant=relevant,
            mode=mode,
            comment=comment,
        )

    def summary(self, collection: str, *, days: int = 7, top: int = 10) -> AnalyticsSummary:
        """The query log, feedback and chunk counters of a collection, summarised over the last `days`."""
        if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= 3650:
            raise InvalidInput(f"days must be an integer from 1 to 3650, got {days!r}")
        if isinstance(top, bool) or not isinstance(top, int) or not 1 <= top <= 100:
            raise InvalidInput(f"top must be an integer from 1 to 100, got {top!r}")
        collection_id = self._collection_id(collection)
        self._recorder.flush()
        return summarise(self._db, collection_id, collection, days=days, top=top)
