"""The HTTP API through FastAPI's test client: status codes, JSON fields and error texts."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from ragstore import RagStore
from ragstore.api.app import create_app

# A multipart upload carries this header: a form on another site cannot (api/origin.py).
UPLOAD = {"X-Requested-With": "test"}


@pytest.fixture
def client(store: RagStore) -> Iterator[TestClient]:
    with TestClient(create_app(store=store)) as test_client:
        yield test_client


def make_collection(client: TestClient, name: str = "kb") -> None:
    assert client.post("/v1/collections", json={"name": name}).status_code == 201


def test_collections_crud(client: TestClient) -> None:
    created = client.post("/v1/collections", json={"name": "kb", "description": "docs"})
    assert created.status_code == 201
    assert created.json()["name"] == "kb" and created.json()["dimension"] == 384
    duplicate = client.post("/v1/collections", json={"name": "kb"})
    assert duplicate.status_code == 409 and "already exists" in duplicate.json()["error"]["message"]
    assert [c["name"] for c in client.get("/v1/collections").json()] == ["kb"]
    assert client.get("/v1/collections/nope").status_code == 404
    bad = client.post("/v1/collections", json={"name": "bad name!"})
    assert bad.status_code == 422 and "invalid collection name" in bad.json()["error"]["message"]
    assert client.delete("/v1/collections/kb").status_code == 204
    assert client.get("/v1/collections/kb").status_code == 404


def test_json_documents_list_get_delete(client: TestClient) -> None:
    make_collection(client)
    body = {
        "text": "제주도 한라산은 성판악 코스로 오르는 것이 완만하다.",
        "title": "한라산",
        "metadata": {"lang": "ko"},
    }
    created = client.post("/v1/collections/kb/documents", json=body)
    assert created.status_code == 201
    doc = created.json()["documents"][0]
    assert doc["status"] == "added" and doc["index_state"] == "indexed"
    many = client.post(
        "/v1/collections/kb/documents",
        json=[
            {"text": "Refunds take 5 to 10 business days.", "title": "refunds"},
            {"text": "Gift cards never expire."},
        ],
    )
    assert [d["status"] for d in many.json()["documents"]] == ["added", "added"]
    listed = client.get("/v1/collections/kb/documents", params={"limit": 2}).json()
    assert len(listed) == 2
    one = client.get(f"/v1/collections/kb/documents/{doc['document_id']}", params={"chunks": True}).json()
    assert one["title"] == "한라산" and one["metadata"] == {"lang": "ko"} and len(one["chunks"]) == 1
    assert client.delete(f"/v1/collections/kb/documents/{doc['document_id']}").status_code == 204
    assert client.get(f"/v1/collections/kb/documents/{doc['document_id']}").status_code == 404


@pytest.mark.parametrize(
    ("name", "content", "mime"),
    [
        ("guide.md", "# 반품\n\n7일 안에 반품할 수 있다.", "text/markdown"),
        ("note.txt", "Back up the database nightly.", "text/plain"),
        (
            "page.html",
            "<html><head><title>T</title><script>x()</script></head><body><p>본문</p></body></html>",
            "text/html",
        ),
        ("doc.json", json.dumps({"title": "J", "text": "json body"}), "application/json"),
    ],
)
def test_file_upload(client: TestClient, name: str, content: str, mime: str) -> None:
    make_collection(client)
    response = client.post(
        "/v1/collections/kb/documents",
        files={"file": (name, content.encode(), mime)},
        data={"metadata": json.dumps({"team": "ops"})},
        headers=UPLOAD,
    )
    assert response.status_code == 201, response.text
    doc = response.json()["documents"][0]
    assert doc["status"] == "added"
    stored = client.get(f"/v1/collections/kb/documents/{doc['document_id']}").json()
    assert stored["metadata"]["team"] == "ops" and stored["mime_type"] == mime


def test_jsonl_upload_makes_one_document_per_line(client: TestClient) -> None:
    make_collection(client)
    lines = "\n".join(json.dumps({"title": f"r{i}", "text": f"record number {i}"}) for i in range(3))
    response = client.post(
        "/v1/collections/kb/documents",
        files={"file": ("faq.jsonl", lines.encode(), "application/x-ndjson")},
        headers=UPLOAD,
    )
    assert response.status_code == 201
    assert len(response.json()["documents"]) == 3


def test_search_by_query_vector_and_filter(client: TestClient) -> None:
    make_collection(client)
    client.post(
        "/v1/collections/kb/documents",
        json=[
            {"text": "김치는 배추를 절여 양념에 버무려 만든다.", "title": "김치", "metadata": {"lang": "ko"}},
            {"text": "Photosynthesis turns sunlight into glucose.", "title": "photo", "metadata": {"lang": "en"}},
        ],
    )
    ko = client.post("/v1/collections/kb/search", json={"query": "김치 만드는 방법", "k": 1}).json()
    assert ko["hits"][0]["title"] == "김치" and ko["dropped"] == 0
    en = client.post("/v1/collections/kb/search", json={"query": "how plants make sugar", "k": 1}).json()
    assert en["hits"][0]["title"] == "photo"
    filtered = client.post("/v1/collections/kb/search", json={"query": "김치", "k": 5, "filter": {"lang": "en"}}).json()
    assert [h["title"] for h in filtered["hits"]] == ["photo"]
    vector = client.app.state.store.components.embedder.embed(["김치"], kind="query")[0].tolist()  # type: ignore[attr-defined]
    by_vector = client.post("/v1/collections/kb/search", json={"vector": vector, "k": 1}).json()
    assert by_vector["hits"][0]["title"] == "김치"
    assert client.post("/v1/collections/kb/search", json={"query": "x", "k": 0}).status_code == 422
    # A text and a vector: the vector ranks the dense side, the text the lexical side.
    both = client.post("/v1/collections/kb/search", json={"query": "김치", "vector": vector, "k": 1}).json()
    assert both["mode"] == "hybrid" and both["hits"][0]["title"] == "김치"
    neither = client.post("/v1/collections/kb/search", json={"k": 3})
    assert neither.status_code == 422 and "give a query" in neither.json()["error"]["message"]


def test_health_and_docs(client: TestClient) -> None:
    health = client.get("/health").json()
    assert health["status"] == "ok"
    assert set(health["components"]) >= {"database", "vector_index", "embedder"}
    database = client.get("/health/database").json()
    assert database["status"] == "ok" and database["dialect"] == client.app.state.store.db.engine.dialect.name
    paths = set(client.get("/openapi.json").json()["paths"])
    assert {
        "/v1/collections",
        "/v1/collections/{name}",
        "/v1/collections/{name}/documents",
        "/v1/collections/{name}/documents/{document_id}",
        "/v1/collections/{name}/search",
        "/health",
        "/health/database",
    } <= paths
    assert client.get("/docs").status_code == 200


def test_the_openapi_pages_load_everything_from_this_server(client: TestClient) -> None:
    """/docs and /redoc name no other host (no CDN, no fonts, no favicon elsewhere); their assets are served
    here (tests/test_openapi_offline_browser.py loads both in Chromium with the network cut off)."""
    for page in ("/docs", "/redoc", "/docs/oauth2-redirect"):
        answer = client.get(page)
        assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/html")
        assert "://" not in answer.text, page
        # The browser may load from this server only; inline scripts by their hashes, not 'unsafe-inline'.
        policy = dict(d.strip().split(" ", 1) for d in answer.headers["content-security-policy"].split(";"))
        assert policy["default-src"] == "'self'" and policy["img-src"] == "'self' data:", policy
        assert policy["script-src"].startswith("'self'") and "unsafe" not in policy["script-src"], policy
    html = client.get("/docs").text + client.get("/redoc").text
    assets = re.findall(r'(?:src|href)="(/docs/assets/[^"]+)"', html)
    assert len(set(assets)) == 4  # Swagger UI's script and style sheet, ReDoc's script, the favicon
    for asset in set(assets):
        served = client.get(asset)
        assert served.status_code == 200 and len(served.content) > 1000, asset
    assert "javascript" in client.get("/docs/assets/redoc.standalone.js").headers["content-type"]
    assert client.get("/docs/assets/nothing.js").status_code == 404
    assert "/docs/assets/{path}" not in client.get("/openapi.json").json()["paths"]
