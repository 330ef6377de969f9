"""Every kind of bad input gets a clear 4xx naming the problem, and nothing of it is stored."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from ragstore import InvalidInput, NotFound, PayloadTooLarge, RagStore, UnsupportedMediaType
from ragstore.api.app import create_app
from ragstore.config import Settings
from ragstore.db.models import Document, DocumentChunk, Embedding, SyncOperation

from conftest import CountingEmbedder

LIMIT = 4096


# A multipart upload carries this header: a form on another site cannot (api/origin.py).
UPLOAD = {"X-Requested-With": "test"}


@pytest.fixture
def small_store(make_settings: Callable[..., Settings], embedder: CountingEmbedder) -> Iterator[RagStore]:
    with RagStore.open(make_settings(max_document_bytes=LIMIT), embedder=embedder) as store:
        store.collections.create("kb")
        store.documents.add_text("kb", "이미 저장된 문서입니다. 잃어버리면 안 됩니다.", title="kept")
        yield store


@pytest.fixture
def client(small_store: RagStore) -> Iterator[TestClient]:
    with TestClient(create_app(store=small_store)) as test_client:
        yield test_client


def counts(store: RagStore) -> tuple[int, ...]:
    with store.db.read() as s:
        return tuple(
            s.scalar(select(func.count()).select_from(model)) or 0
            for model in (Document, DocumentChunk, Embedding, SyncOperation)
        )


FILES = [
    ("empty.txt", b"", "text/plain", 422, "is empty"),
    ("binary.txt", bytes(range(256)) * 4, "text/plain", 422, "binary"),
    ("photo.png.md", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + b"\x00" * 40, "text/markdown", 422, "binary"),
    ("setup.exe", b"MZ\x90\x00\x03", "application/octet-stream", 415, "unsupported file type"),
    ("report.odt", b"PK\x03\x04", "application/octet-stream", 415, "unsupported file type"),
    ("report.docx", b"PK\x03\x04", "application/octet-stream", 422, "not a valid .docx file"),
    ("huge.txt", b"a" * (LIMIT + 1), "text/plain", 413, "over the limit"),
    ("broken.json", b'{"title": "x", "text": ', "application/json", 422, "invalid JSON"),
    ("broken.jsonl", b'{"text": "ok"}\n{not json}\n', "application/x-ndjson", 422, "line 2"),
    ("bad.pdf", b"%PDF-1.4\n garbage garbage", "application/pdf", 422, "PDF"),
]


@pytest.mark.parametrize(("name", "data", "mime", "status", "message"), FILES)
def test_bad_uploads_are_refused_and_store_nothing(
    client: TestClient, small_store: RagStore, name: str, data: bytes, mime: str, status: int, message: str
) -> None:
    before = counts(small_store)
    response = client.post("/v1/collections/kb/documents", files={"file": (name, data, mime)}, headers=UPLOAD)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert message in error["message"] and error["code"]
    assert counts(small_store) == before


@pytest.mark.parametrize(("name", "data", "mime", "status", "message"), FILES)
def test_the_python_api_raises_the_matching_error(
    small_store: RagStore, name: str, data: bytes, mime: str, status: int, message: str
) -> None:
    expected = {413: PayloadTooLarge, 415: UnsupportedMediaType}.get(status, InvalidInput)
    before = counts(small_store)
    with pytest.raises(expected, match=message):
        small_store.documents.ingest_bytes("kb", data, name, content_type=mime)
    assert counts(small_store) == before


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (b'{"text": ', 422, "not valid JSON"),
        (b'{"text": "ok", "metadata": "not an object"}', 422, "metadata"),
        (b'{"text": 42}', 422, "text"),
        (b'{"text": "ok", "unknown_field": 1}', 422, "unknown_field"),
        (b'{"chunks": [{"text": "a", "vector": [1, 2]}]}', 422, "dimension"),
        (b'{"chunks": [{"text": "a", "vector": ["x"]}]}', 422, "vector"),
        (b"[]", 422, "no documents"),
        (b'{"text": "' + b"a" * (LIMIT + 70_000) + b'"}', 413, "over the limit"),
    ],
)
def test_bad_json_bodies(client: TestClient, small_store: RagStore, body: bytes, status: int, message: str) -> None:
    before = counts(small_store)
    response = client.post("/v1/collections/kb/documents", content=body, headers={"content-type": "application/json"})
    assert response.status_code == status, response.text
    assert message in response.json()["error"]["message"]
    assert counts(small_store) == before


def test_unknown_collection_is_404_everywhere(client: TestClient, small_store: RagStore) -> None:
    before = counts(small_store)
    assert client.post("/v1/collections/nope/documents", json={"text": "x"}).status_code == 404
    assert (
        client.post(
            "/v1/collections/nope/documents", files={"file": ("a.txt", b"text", "text/plain")}, headers=UPLOAD
        ).status_code
        == 404
    )
    response = client.post("/v1/collections/nope/search", json={"query": "x"})
    assert response.status_code == 404 and "nope" in response.json()["error"]["message"]
    with pytest.raises(NotFound):
        small_store.documents.add_text("nope", "x")
    assert counts(small_store) == before


def test_wrong_search_input(client: TestClient) -> None:
    wrong_dim = client.post("/v1/collections/kb/search", json={"vector": [0.1, 0.2, 0.3]})
    assert wrong_dim.status_code == 422 and "dimension 3" in wrong_dim.json()["error"]["message"]
    assert client.post("/v1/collections/kb/search", json={"query": "x", "k": "ten"}).status_code == 422
    assert client.post("/v1/collections/kb/search", json={"query": "   "}).status_code == 422
    bad_filter = client.post("/v1/collections/kb/search", json={"query": "x", "filter": {"lang": {"$regex": "k"}}})
    assert bad_filter.status_code == 422 and "unknown operator" in bad_filter.json()["error"]["message"]
    assert client.put("/v1/collections/kb/documents", content=b"x").status_code == 405
    unsupported = client.post("/v1/collections/kb/documents", content=b"x", headers={"content-type": "text/csv"})
    assert unsupported.status_code == 415


def test_what_was_stored_before_survives(client: TestClient, small_store: RagStore) -> None:
    for name, data, mime, *_ in FILES:
        client.post("/v1/collections/kb/documents", files={"file": (name, data, mime)}, headers=UPLOAD)
    hits = small_store.search("kb", "저장된 문서", k=1).hits
    assert hits and hits[0].title == "kept"
