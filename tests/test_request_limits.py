"""Bounded requests and no cross-site writes (api/limits.py, api/origin.py), through the app and at the ASGI level.

The middleware reads no database, so one SQLite store serves the module; what a body costs the process is
measured against a real server in tests/hostile/test_limits.py.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ragstore import RagStore
from ragstore.api.app import create_app
from ragstore.api.limits import BodyLimits, RequestGuardMiddleware, json_depth
from ragstore.api.origin import allowed_hosts, host_name
from ragstore.config import Settings
from ragstore.embeddings.local import LocalEmbedder
from ragstore.search.query_cut import CHARS_PER_TOKEN, cut_query

HOSTS = "localhost,127.0.0.1,::1,testserver"
JSON_LIMIT = 64 * 1024
SEARCH_LIMIT = 256 * 1024
UPLOAD = {"X-Requested-With": "test"}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, local_embedder: LocalEmbedder) -> Iterator[RagStore]:
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("limits") / "data",
        allowed_hosts=HOSTS,
        max_json_body_bytes=JSON_LIMIT,
        max_search_body_bytes=SEARCH_LIMIT,
        max_document_bytes=128 * 1024,
        query_max_tokens=32,
        auth="off",  # the guards are the subject; they run before authentication anyway
    )
    with RagStore.open(settings, embedder=local_embedder) as opened:
        opened.collections.create("kb")
        opened.documents.add_text("kb", "Backups restore the store and its vectors together.", title="backups")
        opened.documents.add_text("kb", "전세 계약을 갱신할 때 확인할 사항을 정리합니다.", title="전세")
        yield opened


@pytest.fixture(scope="module")
def client(store: RagStore) -> Iterator[TestClient]:
    with TestClient(create_app(store=store)) as test_client:
        yield test_client


def error_of(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] and error["message"]
    return error


# -- body limits ------------------------------------------------------------------------------------------


def test_declared_body_over_the_limit_is_413_naming_it(client: TestClient) -> None:
    body = json.dumps({"name": "big", "description": "x" * JSON_LIMIT})
    error = error_of(client.post("/v1/collections", content=body, headers={"content-type": "application/json"}), 413)
    assert f"{JSON_LIMIT:,} bytes" in error["message"] and "RAGSTORE_MAX_JSON_BODY_BYTES" in error["message"]


def test_chunked_body_over_the_limit_is_413(client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"query": "'
        for _ in range(SEARCH_LIMIT // 4096 + 2):
            yield b"a" * 4096
        yield b'"}'

    response = client.post("/v1/collections/kb/search", content=chunks(), headers={"content-type": "application/json"})
    assert "RAGSTORE_MAX_SEARCH_BODY_BYTES" in error_of(response, 413)["message"]


def test_each_route_has_its_limit(client: TestClient) -> None:
    # 100 KiB: over the JSON default, under search's and the upload's.
    big = "word " * 20_000
    assert client.post("/v1/collections", json={"name": "x", "description": big}).status_code == 413
    search = client.post("/v1/collections/kb/search", json={"query": "backup", "filter": {"note": big}})
    assert search.status_code == 200, search.text
    upload = client.post("/v1/collections/kb/documents", files={"file": ("big.txt", big.encode())}, headers=UPLOAD)
    assert upload.status_code == 201, upload.text
    client.delete(f"/v1/collections/kb/documents/{upload.json()['documents'][0]['document_id']}")


class Body:
    """An ASGI receive that hands out `total` bytes in `chunk`-sized messages, counting what was taken."""

    def __init__(self, total: int, chunk: int = 65536, head: bytes = b"") -> None:
        self.left, self.chunk, self.head, self.taken = total, chunk, head, 0

    async def __call__(self) -> dict[str, Any]:
        part = self.head or b"a" * min(self.chunk, self.left)
        self.head = b""
        self.left -= len(part)
        self.taken += len(part)
        return {"type": "http.request", "body": part, "more_body": self.left > 0}


def run_asgi(app: Any, scope: dict[str, Any], receive: Body) -> tuple[int, bytes]:
    import asyncio

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    return status, b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")


def http_scope(path: str, content_type: bytes) -> dict[str, Any]:
    headers = [(b"content-type", content_type), (b"x-requested-with", b"test")]
    return {"type": "http", "method": "POST", "path": path, "headers": headers}


@pytest.mark.parametrize("content_type", [b"application/json", b"multipart/form-data; boundary=x"])
def test_nothing_is_read_past_the_limit(content_type: bytes) -> None:
    """A 1 GiB body without Content-Length: the middleware stops taking it one chunk past the limit."""
    reached: list[int] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:  # reads all it is given, as a form parser does
        while True:
            message = await receive()
            reached.append(len(message.get("body", b"")))
            if not message.get("more_body"):
                break

    limits = BodyLimits(json=JSON_LIMIT, search=SEARCH_LIMIT, upload=1024 * 1024, depth=64)
    body = Body(1024**3)
    path = "/v1/collections/kb/documents" if content_type.startswith(b"multipart") else "/v1/collections"
    status, answer = run_asgi(RequestGuardMiddleware(app, limits, None), http_scope(path, content_type), body)
    assert status == 413 and b"payload_too_large" in answer
    limit = limits.upload if content_type.startswith(b"multipart") else limits.json
    assert body.taken <= limit + body.chunk


# -- JSON shape ----------------------------------------------------------------------------------------------


def test_json_depth_scan() -> None:
    assert json_depth(b'{"a": [1, {"b": [2]}]}', 2) == 4  # few brackets: counted, not scanned
    assert json_depth(b'{"a": "[[[[[[[[[[", "b": [[1]]}', 2) == 3  # brackets inside strings do not nest
    assert json_depth(b'{"a": "\\"[[[[[[[[", "b": 1}', 2) == 1  # nor after an escaped quote
    assert json_depth(b"[" * 100_000 + b"]" * 100_000, 64) == 100_000
    deep_after_flat = b"[" + b"[]," * 3_000_000 + b"[[[[[[[[[[1]]]]]]]]]]]"
    assert json_depth(deep_after_flat, 5) == 11  # scanned across blocks


@pytest.mark.parametrize(
    "path", ["/v1/collections", "/v1/collections/kb/search", "/v1/collections/kb/documents", "/admin/consistency"]
)
def test_deep_json_is_422_before_parsing(client: TestClient, path: str) -> None:
    deep = b"[" * 30_000 + b"]" * 30_000  # under every route's body limit here
    started = time.perf_counter()
    response = client.post(path, content=deep, headers={"content-type": "application/json"})
    assert time.perf_counter() - started < 2
    assert "RAGSTORE_MAX_JSON_DEPTH" in error_of(response, 422)["message"]
    nested = {"query": "backup", "filter": {"a": json.loads("[" * 40 + "1" + "]" * 40)}}
    assert client.post("/v1/collections/kb/search", json=nested).status_code != 500


def test_vectors_longer_than_any_dimension_or_the_collections_are_422(client: TestClient, store: RagStore) -> None:
    too_long = client.post("/v1/collections/kb/search", json={"vector": [0.1] * 16_385})
    assert "16384" in error_of(too_long, 422)["message"]
    dimension = store.collections.get("kb").dimension
    wrong = error_of(client.post("/v1/collections/kb/search", json={"vector": [0.1] * (dimension + 1)}), 422)
    assert f"expects {dimension}" in wrong["message"]
    chunk = {"text": "t", "chunks": [{"text": "c", "vector": [0.1] * 20_000}]}
    assert client.post("/v1/collections/kb/documents", json=chunk).status_code == 422


# -- queries ---------------------------------------------------------------------------------------------------


def test_cut_query() -> None:
    assert cut_query("short question", 32) == cut_query("short question", 32)
    assert not cut_query("short question", 32).truncated
    words = " ".join(f"w{i}" for i in range(1000))
    cut = cut_query(words, 32)  # 32 tokens, cut between words
    assert cut.truncated and words.startswith(cut.text) and cut.text.split()[-1] == "w31"
    long_words = " ".join(f"word{i:04}" for i in range(1000))
    assert len(cut_query(long_words, 32).text) <= 32 * CHARS_PER_TOKEN  # characters bound it first
    endless = "a" * 10_000  # one "word" to the estimate: still cut by characters
    assert len(cut_query(endless, 32).text) == 32 * CHARS_PER_TOKEN
    korean = "전세계약갱신" * 1000
    assert len(cut_query(korean, 32).text) == 64  # two syllables a token


def test_long_query_is_cut_and_says_so_on_both_paths(client: TestClient) -> None:
    query = "backup restore vectors " * 400  # 9,200 characters
    first = client.post("/v1/collections/kb/search", json={"query": query, "k": 2})
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["query_truncated"] is True and 0 < body["query_chars_used"] <= 32 * CHARS_PER_TOKEN
    assert body["query"] == query and body["hits"] and not body["cached"]
    again = client.post("/v1/collections/kb/search", json={"query": query, "k": 2}).json()
    assert again["cached"] is True  # the event loop's fast path
    assert (again["query_truncated"], again["query_chars_used"]) == (True, body["query_chars_used"])
    short = client.post("/v1/collections/kb/search", json={"query": "backup"}).json()
    assert short["query_truncated"] is False and short["query_chars_used"] == len("backup")
    short_again = client.post("/v1/collections/kb/search", json={"query": "backup"}).json()
    assert short_again["cached"] and short_again["query_truncated"] is False
    assert short_again["query_chars_used"] == len("backup")


# -- hosts and cross-site writes -----------------------------------------------------------------------------


def test_host_allowlist_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RAGSTORE_ALLOWED_HOSTS")
    assert allowed_hosts(Settings(data_dir=tmp_path)) == {"localhost", "127.0.0.1", "::1"}
    assert allowed_hosts(Settings(data_dir=tmp_path, api_host="0.0.0.0")) == {"localhost", "127.0.0.1", "::1"}
    assert "rag.internal" in (allowed_hosts(Settings(data_dir=tmp_path, api_host="rag.internal")) or ())
    assert allowed_hosts(Settings(data_dir=tmp_path, allowed_hosts="a.example, [::1]")) == {"a.example", "::1"}
    assert allowed_hosts(Settings(data_dir=tmp_path, allowed_hosts="*")) is None
    assert [host_name(h) for h in ("localhost:8000", "[::1]:8000", "::1", "Example.COM")] == [
        "localhost",
        "::1",
        "::1",
        "example.com",
    ]


def test_wrong_host_is_400(client: TestClient) -> None:
    error = error_of(client.get("/health", headers={"host": "evil.example"}), 400)
    assert "evil.example" in error["message"] and "RAGSTORE_ALLOWED_HOSTS" in error["message"]
    assert client.get("/health", headers={"host": "localhost:8000"}).status_code == 200


def test_cross_site_writes_are_refused(client: TestClient, store: RagStore) -> None:
    before = store.collections.get("kb").document_count
    evil = {"origin": "http://evil.example"}
    form = client.post("/admin/consistency/repair", data={"collection": "kb"}, headers=evil)
    assert error_of(form, 415)["code"] == "unsupported_media_type"
    plain = client.post("/v1/collections", content=b'{"name": "x"}', headers={**evil, "content-type": "text/plain"})
    error_of(plain, 415)
    error_of(client.post("/admin/backup/trigger", headers=evil), 415)  # an empty POST
    upload = client.post("/v1/collections/kb/documents", files={"file": ("a.txt", b"forged")}, headers=evil)
    assert "X-Requested-With" in error_of(upload, 403)["message"]
    assert store.collections.get("kb").document_count == before
    assert client.post("/admin/consistency", headers=UPLOAD).status_code == 200  # empty, with the header
    assert client.delete("/v1/collections/nope").status_code == 404  # DELETE is always preflighted


def test_cors_is_off_unless_configured(client: TestClient, tmp_path: Path, local_embedder: LocalEmbedder) -> None:
    preflight = {
        "origin": "http://app.example",
        "access-control-request-method": "POST",
        "access-control-request-headers": "content-type",
    }
    answer = client.options("/v1/collections/kb/search", headers=preflight)
    assert "access-control-allow-origin" not in answer.headers
    settings = Settings(data_dir=tmp_path / "data", allowed_hosts=HOSTS, cors_origins="http://app.example", auth="off")
    with RagStore.open(settings, embedder=local_embedder) as other, TestClient(create_app(store=other)) as cors:
        allowed = cors.options("/v1/collections", headers=preflight)
        assert allowed.headers["access-control-allow-origin"] == "http://app.example"
        refused = cors.options("/v1/collections", headers={**preflight, "origin": "http://evil.example"})
        assert "access-control-allow-origin" not in refused.headers
