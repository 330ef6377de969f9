"""Text is valid before it is stored: odd but valid strings round-trip, invalid ones are refused naming the
field, through the Python API and HTTP, on SQLite and PostgreSQL (valid_text.py has the rule)."""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ragstore import RagStore
from ragstore.api.app import create_app
from ragstore.errors import InvalidInput, NotFound

# Every kind of odd but valid text: right-to-left with direction marks, combining marks, emoji with
# modifiers and zero-width joiners, zero-width (non-)joiners and a BOM, CJK, Korean as conjoining jamo,
# astral letters, and ordinary controls.
ODD = {
    "rtl": "שלום \u200fعربى\u200e mixed",
    "combining": "e\u0301 a\u0308 \u0915\u094d\u0937 Z\u0335\u0321",
    "emoji": "👩\u200d👩\u200d👧\u200d👦 🏳\ufe0f\u200d🌈 👍🏽",
    "zero_width": "a\u200db\u200cc\ufeffd\u2060e",
    "cjk": "漢字 かな カナ 中文",
    "jamo": "\u1100\u1161\u11a8 \u1112\u1161\u11ab 한국어",
    "astral": "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𓀀",
    "controls": "tab\there\x0bvertical",
}
SURROGATE = "bad \ud800 text"
BIG = 2**64


def _odd_document(kind: str, value: str) -> dict[str, Any]:
    return {
        "text": f"The {kind} sample: {value} and some words to search.",
        "title": f"{kind} {value}",
        "source_uri": f"odd://{kind}/{value}",
        "metadata": {kind: value, f"key {value}": [value, {"nested": value}], "n": 2**63 - 1},
    }


def test_odd_valid_strings_round_trip_through_python(store: RagStore) -> None:
    store.collections.create("kb", description="描述 \u200f with marks e\u0301")
    assert store.collections.get("kb").description == "描述 \u200f with marks e\u0301"
    for kind, value in ODD.items():
        doc = _odd_document(kind, value)
        out = store.documents.add("kb", [doc])[0]
        assert out.status == "added", (kind, out)
        shown = store.documents.get("kb", int(out.document_id or 0), with_chunks=True)
        assert (shown.title, shown.source_uri, shown.metadata) == (doc["title"], doc["source_uri"], doc["metadata"])
        assert shown.chunks and unicodedata.normalize("NFC", doc["text"]) in shown.chunks[0].text
        # Hybrid (an emoji-only query has no lexical terms; the dense side still finds it), filtered on the
        # odd metadata value itself, which only this document holds.
        hits = store.search("kb", value, k=10, filter={kind: value}).hits
        assert [h.document_id for h in hits] == [out.document_id], kind
        assert hits[0].metadata == doc["metadata"] and hits[0].title == doc["title"]
    assert len(store.documents.list("kb")) == len(ODD)


@pytest.mark.parametrize(
    ("document", "field"),
    [
        ({"text": SURROGATE}, "text"),
        ({"text": "fine", "title": SURROGATE}, "title"),
        ({"text": "fine", "source_uri": SURROGATE}, "source_uri"),
        ({"text": "fine", "metadata": {"k": SURROGATE}}, "metadata"),
        ({"text": "fine", "metadata": {SURROGATE: 1}}, "metadata"),
        ({"text": "fine", "metadata": {"a": [1, {"b": SURROGATE}]}}, "metadata"),
        ({"text": "fine", "metadata": {"big": BIG}}, "metadata"),
        ({"text": "fine", "chunks": [{"text": SURROGATE}]}, "chunks"),
        ({"text": "fine", "source_uri": "nul\x00source"}, "source_uri"),
        ({"text": "fine", "metadata": {"k\x00": "v"}}, "metadata"),
        ({"text": "fine", "metadata": {"k": "v\x00"}}, "metadata"),
    ],
)
def test_invalid_strings_are_refused_naming_the_field(store: RagStore, document: dict[str, Any], field: str) -> None:
    store.collections.create("kb")
    with pytest.raises(InvalidInput, match=field):
        store.documents.add("kb", [document])
    with TestClient(create_app(store=store)) as client:
        answer = client.post(
            "/v1/collections/kb/documents",
            content=json.dumps(document).encode(),  # ASCII escapes: the surrogate travels as \ud800
            headers={"content-type": "application/json"},
        )
        assert answer.status_code == 422, answer.text
        assert field in answer.json()["error"]["message"]
        assert client.get("/v1/collections/kb/documents").json() == []  # and the listing still works
    # The core refuses it for a Python caller too, whatever the API's models did.
    assert store.documents.list("kb") == []


def test_nul_in_document_text_is_removed_on_both_dialects(store: RagStore) -> None:
    store.collections.create("kb")
    out = store.documents.add_text("kb", "before\x00after the NUL", source_uri="nul")
    shown = store.documents.get("kb", int(out.document_id or 0), with_chunks=True)
    assert shown.chunks and shown.chunks[0].text == "beforeafter the NUL"
    assert shown.title == "beforeafter the NUL"
    out = store.documents.add_text("kb", "Other text.", title="a\x00title", source_uri="nul-title")
    assert store.documents.get("kb", int(out.document_id or 0)).title == "atitle"


@pytest.fixture
def client(store: RagStore) -> Iterator[TestClient]:
    store.collections.create("kb")
    store.documents.add_text("kb", "The refund arrives within seven days.", source_uri="refund")
    with TestClient(create_app(store=store)) as test_client:
        yield test_client


def _post(client: TestClient, path: str, body: Any) -> Any:
    return client.post(path, content=json.dumps(body).encode(), headers={"content-type": "application/json"})


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"query": SURROGATE}, "query"),
        ({"query": "nul\x00"}, "query"),
        ({"query": "refund", "filter": {"lang": SURROGATE}}, "filter"),
        ({"query": "refund", "filter": {"lang": {"$in": ["ko", SURROGATE]}}}, "filter"),
        ({"query": "refund", "filter": {"n": BIG}}, "filter"),
        ({"query": "refund", "filter": {"document_id": {"$gt": BIG}}}, "filter"),
        ({"query": "refund", "offset": BIG}, "offset"),
        ({"query": "refund", "k": BIG}, "k"),
    ],
)
def test_search_refuses_invalid_strings_and_huge_numbers(
    client: TestClient, store: RagStore, body: dict[str, Any], field: str
) -> None:
    answer = _post(client, "/v1/collections/kb/search", body)
    assert answer.status_code == 422, answer.text
    assert field in answer.json()["error"]["message"]
    python_args = {k: v for k, v in body.items() if k in ("filter", "offset", "k")}
    with pytest.raises(InvalidInput):
        store.search("kb", body["query"], **python_args)
    assert _post(client, "/v1/collections/kb/search", {"query": "refund"}).status_code == 200


@pytest.mark.parametrize(
    ("method", "path", "field"),
    [
        ("GET", f"/v1/collections/kb/documents/{BIG}", "document_id"),
        ("DELETE", f"/v1/collections/kb/documents/{BIG}", "document_id"),
        ("GET", f"/v1/collections/kb/documents?offset={BIG}", "offset"),
        ("GET", f"/admin/consistency/{BIG}", "report_id"),
    ],
)
def test_integers_past_64_bits_are_422_naming_the_field(client: TestClient, method: str, path: str, field: str) -> None:
    answer = client.request(method, path)
    assert answer.status_code == 422, answer.text
    assert field in answer.json()["error"]["message"]


def test_feedback_and_collections_refuse_invalid_strings(client: TestClient, store: RagStore) -> None:
    answer = _post(client, "/v1/collections/kb/feedback", {"query": "refund", "chunk_id": BIG, "relevant": True})
    assert answer.status_code == 422 and "chunk_id" in answer.json()["error"]["message"]
    answer = _post(client, "/v1/collections/kb/feedback", {"query": SURROGATE, "chunk_id": 1, "relevant": True})
    assert answer.status_code == 422 and "query" in answer.json()["error"]["message"]
    answer = _post(client, "/v1/collections", {"name": "other", "description": SURROGATE})
    assert answer.status_code == 422 and "description" in answer.json()["error"]["message"]
    with pytest.raises(InvalidInput, match="description"):
        store.collections.create("other", description=SURROGATE)
    with pytest.raises(NotFound):
        store.documents.get("kb", BIG)
    with pytest.raises(InvalidInput, match="chunk_id"):
        store.analytics.feedback("kb", query="refund", chunk_id=BIG, relevant=True)
