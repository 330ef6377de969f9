"""db/bulk.py: the raw driver's executemany stores exactly what SQLAlchemy's insert stores, on both dialects."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

import pytest
from sqlalchemy import Table, insert, select
from sqlalchemy.orm import Session

from ragstore import RagStore
from ragstore.db.bulk import insert_many
from ragstore.db.ids import allocate_ids
from ragstore.db.models import Document, DocumentStatus

DOCUMENTS = cast(Table, Document.__table__)
_INSERT = insert(DOCUMENTS)
METADATA: list[Any] = [
    {"lang": "ko", "tags": ["지하철", "환승"], "n": 3, "ok": True, "nested": {"a": None}},
    {},
    {"quote": 'it\'s "quoted" 100%', "big": 2**53 + 1, "float": 0.1},
]


def _rows(s: Session, collection_id: int, tag: str) -> list[dict[str, Any]]:
    when = datetime(2026, 12, 7, 14, 30, 15, 123456, tzinfo=UTC)
    ids = allocate_ids(s, DOCUMENTS, len(METADATA))
    return [
        {
            "id": doc_id,
            "collection_id": collection_id,
            "source_uri": f"{tag}/{i}",
            "title": f"제목 {i}",
            "mime_type": "text/plain",
            "size_bytes": 10 * i,
            "metadata": meta,
            "content_hash": f"{i:064d}",
            "encoding": None if i else "utf-8",
            "source_hash": None,
            "status": DocumentStatus.ACTIVE,
            "chunk_count": i,
            "created_at": when,
            "updated_at": when,
        }
        for i, (doc_id, meta) in enumerate(zip(ids, METADATA, strict=True))
    ]


def _stored(store: RagStore, prefix: str) -> list[dict[str, Any]]:
    """The rows under `prefix`, in order, without the two columns that differ by design (id and source)."""
    with store.db.read() as s:
        found = s.execute(
            select(DOCUMENTS).where(DOCUMENTS.c.source_uri.like(f"{prefix}/%")).order_by(DOCUMENTS.c.chunk_count)
        )
        return [{k: v for k, v in row.items() if k not in ("id", "source_uri")} for row in found.mappings()]


def test_insert_many_stores_what_sqlalchemys_insert_stores(store: RagStore) -> None:
    store.collections.create("bulk", embedding_model="m", dimension=4)
    collection_id = store.components.catalog.resolve("bulk").id

    def through_sqlalchemy(s: Session) -> None:
        s.execute(insert(DOCUMENTS), _rows(s, collection_id, "orm"))

    def through_driver(s: Session) -> None:
        insert_many(s, _INSERT, _rows(s, collection_id, "raw"), batch=2)  # two statements: batches are cut

    store.db.write(through_sqlalchemy)
    store.db.write(through_driver)
    orm, raw = _stored(store, "orm"), _stored(store, "raw")
    assert len(raw) == len(METADATA)
    assert raw == orm  # dates, JSON, enums and NULLs read back the same
    assert [r["metadata"] for r in raw] == METADATA
    assert raw[0]["created_at"].replace(tzinfo=UTC) == datetime(2026, 12, 7, 14, 30, 15, 123456, tzinfo=UTC)
    assert raw[0]["status"] == "active" and raw[0]["encoding"] == "utf-8" and raw[1]["encoding"] is None
    with store.db.read() as s:  # the JSON is stored as the same text or JSONB, not only read back alike
        kinds = s.execute(
            select(DOCUMENTS.c.metadata["lang"].as_string()).where(DOCUMENTS.c.source_uri.in_(["raw/0", "orm/0"]))
        ).scalars()
        assert list(kinds) == ["ko", "ko"]


def test_a_column_with_a_python_default_must_be_given(store: RagStore) -> None:
    store.collections.create("bulk", embedding_model="m", dimension=4)
    collection_id = store.components.catalog.resolve("bulk").id

    def without_timestamps(s: Session) -> None:
        given = _rows(s, collection_id, "x")
        rows = [{k: v for k, v in r.items() if k not in ("created_at", "updated_at")} for r in given]
        insert_many(s, _INSERT, rows)

    with pytest.raises(TypeError, match="created_at"):
        store.db.write(without_timestamps)
    assert _stored(store, "x") == []


def test_statements_made_per_call_do_not_grow_the_compiled_cache(store: RagStore) -> None:
    from ragstore.db import bulk

    store.collections.create("bulk", embedding_model="m", dimension=4)
    collection_id = store.components.catalog.resolve("bulk").id
    for n in range(80):  # a new statement object each time: each compiles, the oldest are evicted
        store.db.write(lambda s, n=n: insert_many(s, insert(DOCUMENTS), _rows(s, collection_id, f"many{n}")))
    assert len(bulk._prepared) <= 64
    assert len(_stored(store, "many7")) == len(METADATA) and len(_stored(store, "many79")) == len(METADATA)
