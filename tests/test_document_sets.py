"""Documents by source and filter, bulk deletes, chunk vectors and metadata-only upserts (issue 21's core:
what LangChain, LlamaIndex and the HTTP client address documents by), through the facade and the API."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from ragstore import RagStore
from ragstore.api.app import create_app
from ragstore.db.security_models import AuditLog
from ragstore.errors import InvalidInput, NotFound

VECTORS = {
    "a": [1.0, 0.0, 0.0, 0.0],
    "b": [0.0, 1.0, 0.0, 0.0],
    "c": [0.0, 0.0, 1.0, 0.0],
    "d": [0.6, 0.8, 0.0, 0.0],
}


def _doc(source: str, text: str, **metadata: object) -> dict[str, object]:
    return {
        "source_uri": source,
        "text": text,
        "metadata": metadata,
        "chunks": [{"text": text, "vector": VECTORS.get(source, [0.5, 0.5, 0.5, 0.5])}],
    }


@pytest.fixture
def kb(store: RagStore) -> RagStore:
    store.collections.create("kb", embedding_model="byo", dimension=4)
    outcomes = store.documents.add(
        "kb",
        [
            _doc("a", "alpha text", tenant="x", n=1),
            _doc("b", "beta text", tenant="y", n=2),
            _doc("c", "gamma text", tenant="x", n=3),
            _doc("d", "alpha text", tenant="z", n=4),  # the same text as a: kept as its own document
        ],
        keep_duplicates=True,
    )
    assert [o.status for o in outcomes] == ["added"] * 4
    return store


def test_find_by_sources_and_filter(kb: RagStore) -> None:
    found = kb.documents.find("kb", sources=["c", "missing", "a"], with_chunks=True)
    assert [d.source_uri for d in found] == ["a", "c"]  # id order; the unknown source is left out
    assert [c.text for c in found[0].chunks or []] == ["alpha text"]
    assert found[0].metadata == {"tenant": "x", "n": 1}
    assert [d.source_uri for d in kb.documents.find("kb", filter={"tenant": "x"})] == ["a", "c"]
    assert [d.source_uri for d in kb.documents.find("kb", sources=["a", "b"], filter={"n": {"$gte": 2}})] == ["b"]
    assert [d.source_uri for d in kb.documents.find("kb", limit=2, offset=1)] == ["b", "c"]
    assert kb.documents.find("kb", sources=[]) == []
    with pytest.raises(InvalidInput, match=r"filter\.n"):
        kb.documents.find("kb", filter={"n": {"$bogus": 1}})
    with pytest.raises(NotFound):
        kb.documents.find("nope", sources=["a"])


def test_metadata_only_change_replaces_the_document(kb: RagStore) -> None:
    again = kb.documents.add("kb", [_doc("a", "alpha text", tenant="x", n=1)])
    assert again[0].status == "unchanged"
    # True == 1 in Python, but not in the stored JSON: a type change is a change.
    changed = kb.documents.add("kb", [_doc("a", "alpha text", tenant="x", n=True)])
    assert changed[0].status == "replaced"
    (doc,) = kb.documents.find("kb", sources=["a"])
    assert doc.metadata == {"tenant": "x", "n": True}
    hits = kb.search("kb", vector=VECTORS["a"], k=1, mode="dense").hits
    assert hits[0].source_uri == "a" and hits[0].metadata == {"tenant": "x", "n": True}


def test_delete_many(kb: RagStore) -> None:
    with pytest.raises(InvalidInput, match="name the documents"):
        kb.documents.delete_many("kb")
    with pytest.raises(InvalidInput, match="name the documents"):
        kb.documents.delete_many("kb", filter={})
    with pytest.raises(InvalidInput, match="everything"):
        kb.documents.delete_many("kb", sources=["a"], everything=True)
    assert kb.documents.delete_many("kb", sources=["missing"]).deleted == 0
    gone = kb.documents.delete_many("kb", sources=["a", "missing"])
    assert gone.deleted == 1 and len(gone.document_ids) == 1
    assert kb.documents.delete_many("kb", filter={"tenant": "x"}).deleted == 1  # c
    hits = kb.search("kb", vector=VECTORS["a"], k=10, mode="dense").hits
    assert sorted(h.source_uri for h in hits) == ["b", "d"]
    assert kb.documents.delete_many("kb", everything=True).deleted == 2
    assert kb.documents.find("kb") == []
    assert kb.search("kb", vector=VECTORS["a"], k=10, mode="dense").hits == []
    with kb.components.db.read() as s:
        rows = s.execute(
            select(AuditLog.details, AuditLog.outcome).where(AuditLog.action == "document.delete_many")
        ).all()
    assert [r.details["deleted"] for r in rows if r.outcome == "success"] == [0, 1, 1, 2]


def test_chunk_vectors(kb: RagStore) -> None:
    hits = kb.search("kb", vector=VECTORS["b"], k=4, mode="dense").hits
    ids = [h.chunk_id for h in hits]
    got = kb.documents.vectors("kb", [*reversed(ids), 10**12])
    assert [v.chunk_id for v in got] == list(reversed(ids))
    # d holds a's text: one text has one embedding under a model (keyed by content hash), so the vector
    # given with d's chunk was not stored again.
    by_source = {h.chunk_id: "a" if h.source_uri == "d" else h.source_uri for h in hits}
    for v in got:
        assert v.vector == pytest.approx(VECTORS[by_source[v.chunk_id]])
    kb.collections.create("other", embedding_model="byo", dimension=4)
    assert kb.documents.vectors("other", ids) == []  # another collection's chunks are not read through this one
    with pytest.raises(InvalidInput, match=r"chunk_ids\[0\]"):
        kb.documents.vectors("kb", [0])


@pytest.fixture
def client(kb: RagStore) -> Iterator[TestClient]:
    with TestClient(create_app(store=kb)) as test_client:
        yield test_client


def test_http_routes(client: TestClient) -> None:
    found = client.post("/v1/collections/kb/documents/find", json={"sources": ["b"], "with_chunks": True})
    assert found.status_code == 200, found.text
    assert [(d["source_uri"], d["chunks"][0]["text"]) for d in found.json()] == [("b", "beta text")]
    bad = client.post("/v1/collections/kb/documents/find", json={"limit": 0})
    assert bad.status_code == 422
    assert client.post("/v1/collections/none/documents/find", json={}).status_code == 404
    hit = client.post("/v1/collections/kb/search", json={"vector": VECTORS["c"], "k": 1, "mode": "dense"}).json()
    chunk_id = hit["hits"][0]["chunk_id"]
    vectors = client.post("/v1/collections/kb/chunks/vectors", json={"chunk_ids": [chunk_id]})
    assert vectors.status_code == 200 and vectors.json()[0]["vector"] == pytest.approx(VECTORS["c"])
    assert client.post("/v1/collections/kb/chunks/vectors", json={"chunk_ids": [-1]}).status_code == 422
    refused = client.post("/v1/collections/kb/documents/delete", json={})
    assert refused.status_code == 422 and "name the documents" in refused.json()["error"]["message"]
    deleted = client.post("/v1/collections/kb/documents/delete", json={"filter": {"tenant": "y"}})
    assert deleted.status_code == 200 and deleted.json()["deleted"] == 1
    # keep_duplicates over HTTP: the same text under a new source is stored, not reported duplicate.
    body = {"source_uri": "e", "text": "beta text", "chunks": [{"text": "beta text", "vector": VECTORS["b"]}]}
    dup = client.post("/v1/collections/kb/documents", json=_doc("c2", "gamma text"))
    assert dup.json()["documents"][0]["status"] == "duplicate"
    kept = client.post("/v1/collections/kb/documents?keep_duplicates=true", json=_doc("c2", "gamma text"))
    assert kept.status_code == 201 and kept.json()["documents"][0]["status"] == "added"
    assert client.post("/v1/collections/kb/documents", json=body).json()["documents"][0]["status"] == "added"


def test_a_model_name_is_one_vector_space(kb: RagStore) -> None:
    """Stored vectors are keyed by (model, text): another dimension under a name in use is refused."""
    from ragstore.errors import Conflict

    with pytest.raises(Conflict, match="used by collection 'kb' with dimension 4"):
        kb.collections.create("three", embedding_model="byo", dimension=3)
    assert kb.collections.create("four", embedding_model="byo", dimension=4).dimension == 4


def test_find_pages_at_any_offset(kb: RagStore) -> None:
    """The deepest offset a request may name pages past the end, without overflowing SQL's 64-bit integers."""
    assert kb.documents.find("kb", offset=2**63 - 1, limit=10_000) == []
    many = [f"s{i}" for i in range(1_500)] + ["b", "a"]  # two slices of sources
    assert [d.source_uri for d in kb.documents.find("kb", sources=many, offset=1)] == ["b"]
    assert kb.documents.find("kb", sources=many, offset=2**63 - 1) == []
