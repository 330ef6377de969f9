"""The query log outlives the collections it names (found by tests/test_fuzz_api.py's stateful phase)."""

from __future__ import annotations

from sqlalchemy import func, select

from ragstore import RagStore
from ragstore.db.models import QueryLog


def test_a_deleted_collection_does_not_stop_the_query_log(store: RagStore) -> None:
    recorder = store.components.recorder
    recorder.interval_s = 3600  # no background flush during the test: the flushes below are the only ones
    for name in ("gone", "kept"):
        store.collections.create(name)
        store.documents.add(name, [{"text": f"Refunds of {name} take five days."}])
    store.search("gone", "refunds")
    store.collections.delete("gone")  # while its search is still buffered
    store.search("kept", "refunds")
    assert recorder.flush() == 2  # used to raise an IntegrityError (FOREIGN KEY) and keep both for a retry
    store.search("kept", "refunds again")
    assert recorder.flush() == 1
    with store.db.read() as s:
        assert s.scalars(select(QueryLog.query).order_by(QueryLog.id)).all() == ["refunds", "refunds again"]
        assert s.scalar(select(func.count()).select_from(QueryLog)) == 2
