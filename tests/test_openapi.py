"""The OpenAPI document is the contract: every reference in it resolves, every route documents the errors it
answers with, and the answers really have the documented shape (routing and parsing errors included, and
times with their timezone on SQLite and PostgreSQL alike)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ragstore import RagStore
from ragstore.api.app import create_app
from ragstore.config import Settings

METHODS = {"get", "post", "put", "patch", "delete"}
ERROR_BODY = "#/components/schemas/ErrorResponse"
# A route that takes a JSON body can fail before its handler runs: unreadable, too large, wrong type, invalid.
BODY_STATUSES = {"400", "413", "415", "422"}


@pytest.fixture(scope="module")
def document(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The document as the app builds it (no store is opened: building the document needs none)."""
    settings = Settings(data_dir=tmp_path_factory.mktemp("openapi"))
    return create_app(settings).openapi()


@pytest.fixture
def client(store: RagStore) -> Iterator[TestClient]:
    with TestClient(create_app(store=store)) as test_client:
        yield test_client


def _operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield method, path, operation


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def _resolve(document: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), f"{ref}: only local references are used"
    node: Any = document
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        assert isinstance(node, dict) and part in node, f"{ref} does not resolve (no {part!r})"
        node = node[part]
    return node


def test_every_reference_resolves(document: dict[str, Any]) -> None:
    refs = set(_refs(document))
    assert len(refs) > 40  # the walk found the document's references
    for ref in sorted(refs):
        assert ref.startswith("#/components/schemas/"), f"{ref} is not a component (e.g. a stray #/$defs)"
        assert isinstance(_resolve(document, ref), dict)


def test_chunk_inputs_are_described_where_fuzzers_read_them(document: dict[str, Any]) -> None:
    """`DocumentInput.chunks` was a `#/$defs/ChunkInput` reference that resolved nowhere."""
    body = document["paths"]["/v1/collections/{name}/documents"]["post"]["requestBody"]["content"]
    one, many = body["application/json"]["schema"]["anyOf"]
    chunk = one["properties"]["chunks"]["anyOf"][0]["items"]
    assert chunk["required"] == ["text"] and set(chunk["properties"]) == {"text", "vector"}
    assert many["items"] == one and many["minItems"] == 1
    assert "file" in body["multipart/form-data"]["schema"]["required"]


def test_every_route_documents_its_errors_with_the_error_body(document: dict[str, Any]) -> None:
    operations = list(_operations(document))
    assert len(operations) >= 26
    for method, path, operation in operations:
        where = f"{method.upper()} {path}"
        responses = operation["responses"]
        takes_input = bool(operation.get("parameters")) or "requestBody" in operation
        if takes_input:
            assert "422" in responses, f"{where} takes input but documents no 422"
        if "requestBody" in operation and "application/json" in operation["requestBody"]["content"]:
            assert set(responses) >= BODY_STATUSES, f"{where} lacks {BODY_STATUSES - set(responses)}"
        if "{name}" in path or "{document_id}" in path or "{report_id}" in path:
            assert "404" in responses, f"{where} names a resource but documents no 404"
        if path.startswith("/v1/"):
            assert "503" in responses, f"{where} reads the database but documents no 503"
        for status, answer in responses.items():
            assert answer.get("description"), f"{where} {status} says nothing"
            if int(status) >= 400 and not path.startswith("/health"):
                schema = answer["content"]["application/json"]["schema"]
                assert schema == {"$ref": ERROR_BODY}, f"{where} {status} is not the error body"
    schemas = document["components"]["schemas"]
    assert "HTTPValidationError" not in schemas  # FastAPI's `{"detail": ...}` is never what we send


def test_a_get_on_a_post_route_is_405_not_a_bad_id(client: TestClient) -> None:
    answer = client.get("/admin/consistency/repair")
    assert answer.status_code == 405, answer.text
    assert answer.headers["allow"] == "POST"
    assert answer.json()["error"]["code"] == "method_not_allowed"
    assert "POST" in answer.json()["error"]["message"]
    # `Allow` names every method of the path, not only those of the first route that matched it.
    assert client.request("OPTIONS", "/v1/collections").headers["allow"] == "GET, POST"
    assert client.put("/v1/collections/kb/documents/1").headers["allow"] == "DELETE, GET"
    assert client.get("/admin/consistency/123456").status_code == 404  # an id still reaches the report route


def test_every_path_refuses_the_methods_it_does_not_document(client: TestClient, document: dict[str, Any]) -> None:
    """No route with a path parameter swallows another route's path (a 422 for a bad id instead of a 405)."""
    for path, item in document["paths"].items():
        concrete = re.sub(r"\{[^}]+\}", "1", path.replace("{name}", "kb"))  # any other parameter: an id
        documented = {m.upper() for m in item if m in METHODS}
        for method in sorted({"GET", "POST", "DELETE", "PUT"} - documented):
            answer = client.request(method, concrete)
            assert answer.status_code == 405, f"{method} {path}: {answer.status_code} {answer.text}"
            assert set(answer.headers["allow"].split(", ")) == documented, f"{method} {path}"


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "code"),
    [
        ("get", "/v1/no-such-route", {}, 404, "not_found"),
        ("delete", "/v1/collections", {}, 405, "method_not_allowed"),
        ("put", "/v1/collections/kb/search", {}, 405, "method_not_allowed"),
        ("post", "/v1/collections", {"content": b'{"name": ', "headers": {"content-type": "application/json"}}, 422,
         "invalid_input"),
        ("post", "/v1/collections", {"content": b"\xff\xfe{", "headers": {"content-type": "application/json"}}, 400,
         "invalid_input"),
        ("post", "/v1/collections/kb/search", {"content": b"[1,", "headers": {"content-type": "application/json"}},
         422, "invalid_input"),
        ("post", "/v1/collections/kb/documents", {"content": b"\xff{", "headers": {"content-type": "application/json"}},
         400, "invalid_input"),
        ("post", "/v1/collections/kb/documents", {"content": b"x", "headers": {"content-type": "text/plain"}}, 415,
         "unsupported_media_type"),
        ("post", "/v1/collections/kb/documents",
         {"content": b"--b\r\nbroken",
          "headers": {"content-type": "multipart/form-data", "x-requested-with": "t"}}, 400,
         "invalid_input"),
    ],
)  # fmt: skip
def test_routing_and_parse_errors_use_the_documented_body(
    client: TestClient, method: str, path: str, kwargs: dict[str, Any], status: int, code: str
) -> None:
    client.post("/v1/collections", json={"name": "kb"})
    answer = client.request(method.upper(), path, **kwargs)
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert set(body) == {"error"} and body["error"]["code"] == code, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]


def _aware_utc(text: str) -> datetime:
    parsed = datetime.fromisoformat(text)
    assert parsed.tzinfo is not None and parsed.utcoffset() == UTC.utcoffset(None), text
    return parsed


def test_times_carry_their_timezone(client: TestClient) -> None:
    """SQLite hands stored times back naive; every face still sends them as UTC (OpenAPI `date-time`)."""
    before = datetime.now(UTC)
    created = client.post("/v1/collections", json={"name": "kb"}).json()
    assert abs((_aware_utc(created["created_at"]) - before).total_seconds()) < 60
    listed = client.get("/v1/collections").json()[0]
    shown = client.get("/v1/collections/kb").json()
    for body in (listed, shown):
        _aware_utc(body["created_at"])
        _aware_utc(body["updated_at"])
    added = client.post("/v1/collections/kb/documents", json={"text": "Times are stored in UTC."}).json()
    document_id = added["documents"][0]["document_id"]
    for body in (
        client.get(f"/v1/collections/kb/documents/{document_id}").json(),
        client.get("/v1/collections/kb/documents").json()[0],
    ):
        _aware_utc(body["created_at"])
        _aware_utc(body["updated_at"])
    report = client.post("/admin/consistency", json={}).json()
    _aware_utc(report["started_at"])
    _aware_utc(report["finished_at"])
    for run in client.get("/admin/consistency/history").json():
        _aware_utc(run["started_at"])
