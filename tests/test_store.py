"""The main job through the Python facade: ingest, dedupe, replace, delete, reopen."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select, text

from ragstore import InvalidInput, NotFound, RagStore, Settings, Unavailable
from ragstore.db.models import ChunkStatus, DocumentChunk, Embedding, SyncOperation

from conftest import CountingEmbedder

KIMCHI = "김치는 배추를 소금에 절인 뒤 고춧가루, 마늘, 젓갈로 만든 양념에 버무려 발효시킨 음식이다."
SUBWAY = "서울 지하철에서 다른 노선으로 갈아탈 때는 30분 안에 환승하면 추가 요금이 붙지 않는다."
PHOTO = "Photosynthesis lets plants turn sunlight, water and carbon dioxide into glucose and oxygen."


def chunk_rows(store: RagStore) -> list[DocumentChunk]:
    with store.db.read() as s:
        return list(s.scalars(select(DocumentChunk).order_by(DocumentChunk.id)))


def test_ingest_then_search_finds_korean_and_english(store: RagStore) -> None:
    store.collections.create("kb")
    for body, title in ((KIMCHI, "kimchi"), (SUBWAY, "subway"), (PHOTO, "photosynthesis")):
        outcome = store.documents.add_text("kb", body, title=title)
        assert outcome.status == "added"
        assert outcome.index_state == "indexed"
    assert store.search("kb", "김치 만드는 방법", k=1).hits[0].title == "kimchi"
    assert store.search("kb", "지하철 갈아타기 요금", k=1).hits[0].title == "subway"
    assert store.search("kb", "how do plants make sugar?", k=1).hits[0].title == "photosynthesis"
    info = store.collections.get("kb")
    assert (info.document_count, info.chunk_count, info.indexed_chunk_count) == (3, 3, 3)
    assert store.components.vectors.count(chunk_rows(store)[0].collection_id) == 3


def test_reingest_is_a_noop_without_embedding_calls(store: RagStore, embedder: CountingEmbedder) -> None:
    store.collections.create("kb")
    store.documents.add_text("kb", KIMCHI, source_uri="file:kimchi.txt")
    embedded = embedder.texts_embedded
    ops_before = store.index.outbox_counts()
    again = store.documents.add_text("kb", KIMCHI, source_uri="file:kimchi.txt")
    assert again.status == "unchanged"
    assert embedder.texts_embedded == embedded
    assert store.index.outbox_counts() == ops_before
    assert len(chunk_rows(store)) == 1


def test_same_text_in_another_collection_reuses_stored_embeddings(store: RagStore, embedder: CountingEmbedder) -> None:
    store.collections.create("a")
    store.collections.create("b")
    store.documents.add_text("a", KIMCHI)
    embedded = embedder.texts_embedded
    assert store.documents.add_text("b", KIMCHI).status == "added"
    assert embedder.texts_embedded == embedded  # served from the embeddings table


def test_changed_file_replaces_its_chunks(store: RagStore, tmp_path: Path) -> None:
    store.collections.create("kb")
    path = tmp_path / "guide.md"
    path.write_text("# 환불 규정\n\n구매 후 7일 안에 환불을 요청할 수 있다.\n", encoding="utf-8")
    first = store.documents.ingest_paths("kb", [path]).outcomes[0]
    assert first.status == "added"
    old_chunks = {c.id for c in chunk_rows(store)}
    path.write_text("# 환불 규정\n\n구매 후 30일 안에 환불을 요청할 수 있다. 영수증이 필요하다.\n", encoding="utf-8")
    second = store.documents.ingest_paths("kb", [path]).outcomes[0]
    assert second.status == "replaced"
    rows = chunk_rows(store)
    assert old_chunks.isdisjoint({c.id for c in rows})
    assert all(c.status == ChunkStatus.INDEXED for c in rows)
    docs = store.documents.list("kb")
    assert len(docs) == 1 and docs[0].id == second.document_id
    hits = store.search("kb", "환불 기간", k=5).hits
    assert {h.document_id for h in hits} == {second.document_id}
    assert "30일" in hits[0].text
    assert store.components.vectors.count(rows[0].collection_id) == len(rows)


def test_delete_removes_vectors_then_rows(store: RagStore) -> None:
    store.collections.create("kb")
    keep = store.documents.add_text("kb", PHOTO)
    gone = store.documents.add_text("kb", KIMCHI)
    cid = chunk_rows(store)[0].collection_id
    assert store.components.vectors.count(cid) == 2
    assert gone.document_id is not None
    store.documents.delete("kb", gone.document_id)
    assert store.components.vectors.count(cid) == 1
    assert [c.document_id for c in chunk_rows(store)] == [keep.document_id]
    assert all(h.document_id == keep.document_id for h in store.search("kb", "김치", k=5).hits)
    with pytest.raises(NotFound):
        store.documents.get("kb", gone.document_id)
    with store.db.read() as s:
        assert s.scalar(select(func.count()).select_from(SyncOperation).where(SyncOperation.state != "done")) == 0


def test_ids_of_deleted_rows_are_never_handed_out_again(store: RagStore) -> None:
    """Chunk ids are vector keys: a new chunk must never take the id of one whose delete may be replayed."""
    store.collections.create("kb")
    first = store.documents.add_text("kb", PHOTO)
    second = store.documents.add_text("kb", KIMCHI)
    assert first.document_id is not None and second.document_id is not None
    old_chunks = {c.id for c in chunk_rows(store)}
    store.documents.delete("kb", second.document_id)  # the highest ids are gone from the table
    third = store.documents.add_text("kb", KIMCHI)
    assert third.document_id is not None and third.document_id > second.document_id
    new_chunks = {c.id for c in chunk_rows(store)} - old_chunks
    assert new_chunks and min(new_chunks) > max(old_chunks)
    assert all(c.vector_id == c.id for c in chunk_rows(store))


def test_delete_collection_drops_everything(store: RagStore) -> None:
    store.collections.create("kb")
    store.documents.add_text("kb", PHOTO)
    store.collections.delete("kb")
    with pytest.raises(NotFound):
        store.collections.get("kb")
    assert chunk_rows(store) == []
    store.collections.create("kb")  # the name is free again
    assert store.collections.get("kb").document_count == 0


def test_reopen_keeps_everything_and_embeddings_live_in_sql(store: RagStore, embedder: CountingEmbedder) -> None:
    store.collections.create("kb")
    store.documents.add_text("kb", KIMCHI, title="kimchi")
    store.documents.add_text("kb", PHOTO, title="photo")
    settings = store.settings
    store.close()
    with RagStore.open(settings, embedder=embedder) as again:
        assert again.search("kb", "kimchi recipe", k=1).hits[0].title == "kimchi"
        with again.db.read() as s:
            # The collection model's two vectors; the companion's (documents/companion.py) live beside them.
            assert s.scalar(select(func.count()).select_from(Embedding).where(Embedding.model == embedder.model)) == 2
            assert s.scalar(select(func.count()).select_from(Embedding).where(Embedding.model != embedder.model)) > 2


def test_index_rebuild_from_sql_makes_no_embedding_calls(store: RagStore, embedder: CountingEmbedder) -> None:
    store.collections.create("kb")
    store.documents.add_text("kb", KIMCHI, title="kimchi")
    store.documents.add_text("kb", PHOTO, title="photo")
    before = store.search("kb", "김치", k=2)
    embedded = embedder.texts_embedded
    assert store.index.rebuild().vectors == {"kb": 2}
    assert embedder.texts_embedded == embedded
    after = store.search("kb", "김치", k=2)
    assert [h.chunk_id for h in after.hits] == [h.chunk_id for h in before.hits]


def test_deleted_index_files_are_rebuilt_on_open(store: RagStore, embedder: CountingEmbedder) -> None:
    store.collections.create("kb")
    store.documents.add_text("kb", KIMCHI, title="kimchi")
    settings = store.settings
    store.close()
    for path in settings.index_dir.iterdir():
        path.unlink()
    with RagStore.open(settings, embedder=embedder) as again:
        assert again.recovery.rebuilt_collections
        assert again.search("kb", "김치", k=1).hits[0].title == "kimchi"


def test_bring_your_own_vectors_and_search_by_vector(store: RagStore) -> None:
    store.collections.create("vecs", embedding_model="my-model", dimension=4)
    store.documents.add(
        "vecs",
        [
            {
                "title": "x",
                "chunks": [{"text": "east", "vector": [1, 0, 0, 0]}, {"text": "north", "vector": [0, 1, 0, 0]}],
            },
            {"title": "y", "chunks": [{"text": "up", "vector": [0, 0, 1, 0]}]},
        ],
    )
    hits = store.search("vecs", vector=[0.1, 0.9, 0, 0], k=2).hits
    assert [h.text for h in hits] == ["north", "east"]
    with pytest.raises(InvalidInput, match="dimension 3"):
        store.search("vecs", vector=[1, 0, 0], k=2)
    with pytest.raises(InvalidInput, match="cannot embed"):
        store.search("vecs", "text query", k=2, mode="dense")
    # A text alone on such a collection: hybrid falls back to lexical, the one side it can run.
    by_text = store.search("vecs", "north", k=2)
    assert by_text.mode == "lexical" and [h.text for h in by_text.hits] == ["north"]
    with pytest.raises(InvalidInput, match="dimension"):
        store.documents.add("vecs", [{"chunks": [{"text": "bad", "vector": [1, 0]}]}])


def test_metadata_filter_is_applied_in_sql(store: RagStore) -> None:
    store.collections.create("kb")
    store.documents.add_text("kb", KIMCHI, title="kimchi", metadata={"lang": "ko", "year": 2020})
    store.documents.add_text("kb", SUBWAY, title="subway", metadata={"lang": "ko", "year": 2024})
    store.documents.add_text("kb", PHOTO, title="photo", metadata={"lang": "en", "year": 2024})
    assert [h.title for h in store.search("kb", "food", k=5, filter={"lang": "en"}).hits] == ["photo"]
    assert {h.title for h in store.search("kb", "food", k=5, filter={"year": {"$gte": 2024}}).hits} == {
        "subway",
        "photo",
    }
    assert {h.title for h in store.search("kb", "food", k=5, filter={"lang": ["ko"]}).hits} == {"kimchi", "subway"}
    assert store.search("kb", "food", k=5, filter={"lang": "fr"}).hits == []
    with pytest.raises(InvalidInput):
        store.search("kb", "food", filter={"lang": {"$regex": "k"}})


def test_vector_hits_without_an_indexed_row_are_dropped(store: RagStore) -> None:
    store.collections.create("kb")
    keep = store.documents.add_text("kb", PHOTO, title="photo")
    cid = chunk_rows(store)[0].collection_id
    # An orphan: a vector in the index that SQL knows nothing about.
    orphan = np.asarray(store.components.embedder.embed(["photosynthesis in plants"], kind="document"))
    store.components.vectors.upsert(cid, np.array([999_999], dtype=np.int64), orphan)
    result = store.search("kb", "photosynthesis in plants", k=5)
    assert [h.document_id for h in result.hits] == [keep.document_id]
    assert result.dropped == 1
    assert store.components.searcher.counters.orphan_hits >= 1


def test_changing_the_index_precision_rebuilds_from_sql(store: RagStore, embedder: CountingEmbedder) -> None:
    store.collections.create("kb")
    store.documents.add_text("kb", KIMCHI, title="kimchi")
    settings = store.settings
    store.close()
    embedded = embedder.texts_embedded
    with RagStore.open(settings.model_copy(update={"index_dtype": "f32"}), embedder=embedder) as again:
        assert again.recovery.rebuilt_collections
        assert again.search("kb", "김치", k=1).hits[0].title == "kimchi"
    assert embedder.texts_embedded == embedded + 1  # the query only: nothing was re-embedded


def test_reporting_views_summarise_collections_activity_and_queues(store: RagStore) -> None:
    store.collections.create("kb")
    store.documents.add_text("kb", PHOTO, title="photo")
    store.documents.add_text("kb", KIMCHI, title="kimchi")
    with store.db.engine.connect() as conn:
        stats = conn.execute(
            text("SELECT collection, documents, chunks, indexed_chunks, pending_chunks FROM ragstore_collection_stats")
        ).all()
        activity = conn.execute(text("SELECT collection, documents, chunks FROM ragstore_ingest_activity")).all()
        queues = conn.execute(text("SELECT queue, state, items FROM ragstore_queue_health")).all()
    assert [tuple(r) for r in stats] == [("kb", 2, 2, 2, 0)]
    assert [tuple(r) for r in activity] == [("kb", 2, 2)]
    assert ("outbox", "done", 2) in [tuple(r) for r in queues]


def test_many_request_threads_searching_at_once_never_exhaust_the_pool(store: RagStore) -> None:
    """A server answers on dozens of threads; the search path once kept a pooled connection per thread for
    good, so the 16th thread waited for the pool until it timed out and every request after it stalled."""
    from concurrent.futures import ThreadPoolExecutor

    store.collections.create("kb")
    store.documents.add_text("kb", PHOTO, title="photo")
    vector = store.components.embedder.embed(["plants"], kind="query")[0]
    with ThreadPoolExecutor(max_workers=40) as pool:
        results = list(pool.map(lambda _: store.search("kb", vector=vector, k=1), range(200), timeout=60))
    assert all(r.hits[0].title == "photo" for r in results)


def test_a_store_opened_for_reading_lists_but_refuses_searches_writes_and_backups(
    settings: Settings, embedder: CountingEmbedder
) -> None:
    """recover=False opens no vector index: what SQL holds is readable, and everything that needs the index
    fails loudly instead of running against an index nobody brought level."""
    with RagStore.open(settings, embedder=embedder) as store:
        store.collections.create("kb")
        store.documents.add_text("kb", "전세 계약 전에는 등기부등본을 확인한다.", title="doc")
    with RagStore.open(settings, embedder=embedder, recover=False) as reading:
        assert [c.name for c in reading.collections.list()] == ["kb"]
        assert reading.collections.get("kb").indexed_chunk_count == 1
        assert len(reading.documents.list("kb")) == 1
        with pytest.raises(Unavailable, match="opened without"):
            reading.search("kb", "등기부등본", mode="dense")
        with pytest.raises(Unavailable, match="opened without"):
            reading.backups.create("full")
        assert reading.worker is None
    with RagStore.open(settings, embedder=embedder) as store:  # a normal open afterwards is unharmed
        assert store.search("kb", "등기부등본", k=1).hits[0].title == "doc"
