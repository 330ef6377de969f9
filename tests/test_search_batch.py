"""Search batches (`POST /v1/collections/{name}/search/batch`, `store.search.batch`, the clients' `batch`): the
same answers as the searches one by one, in order, for one embedding call; a bad search refuses the batch
before anything runs; the read role; each search counted once by the rate limiter and the usage log.

Lean on purpose (two stores per database): each test checks several things on one store."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from ragstore.api.app import create_app
from ragstore.client import AsyncRagStoreClient, RagStoreClient
from ragstore.config import Settings
from ragstore.db.models import QueryLog
from ragstore.db.security_models import ApiUsageLog
from ragstore.errors import InvalidInput
from ragstore.schemas import SearchRequest, SearchResponse
from ragstore.service import RagStore
from servers import app_in_thread

from conftest import CountingEmbedder

TOPICS = ["환불", "배송", "연차", "보험", "환불 규정", "반품", "refund window", "shipping times", "결제", "환불 계좌"]
DOCS: list[dict[str, Any]] = [
    {"title": f"doc{i}", "text": f"{t} 안내 문서 {i}번. 이 문서는 {t}에 관한 내용입니다.", "metadata": {"n": i}}
    for i, t in enumerate(TOPICS)
]
BATCH = "/v1/collections/kb/search/batch"


def _searches(vector: list[float]) -> list[dict[str, Any]]:
    """Every mode, both fusions, a filter, a given vector, text with a vector, paging and explain."""
    return [
        {"query": "환불 기간", "k": 4},  # hybrid, bridge fusion (the default)
        {"query": "shipping", "mode": "lexical", "k": 3},
        {"query": "보험", "mode": "dense", "k": 3, "filter": {"n": {"$gte": 2}}},
        {"vector": vector, "k": 5},  # a vector alone: dense
        {"query": "환불 기간", "fusion": "rrf", "k": 3, "explain": True},
        {"query": "refund", "vector": vector, "k": 3, "offset": 1},
        {"query": "환불", "mode": "lexical", "filter": {"$or": [{"n": 0}, {"n": 9}]}, "k": 2},
    ]


def _same(batched: dict[str, Any], single: dict[str, Any]) -> None:
    assert batched["mode"] == single["mode"] and batched["k"] == single["k"]
    assert batched["next_cursor"] == single["next_cursor"]
    assert [h["chunk_id"] for h in batched["hits"]] == [h["chunk_id"] for h in single["hits"]]
    assert [h["score"] for h in batched["hits"]] == pytest.approx([h["score"] for h in single["hits"]], abs=1e-5)
    assert [h["explain"] is None for h in batched["hits"]] == [h["explain"] is None for h in single["hits"]]


def _logged(store: RagStore) -> int:
    store.components.recorder.flush()
    with store.db.read() as s:
        return int(s.scalar(select(func.count()).select_from(QueryLog)) or 0)


def _usage(store: RagStore) -> list[ApiUsageLog]:
    store.usage.flush()
    with store.db.read() as s:
        return list(s.scalars(select(ApiUsageLog).order_by(ApiUsageLog.id)))


def test_a_batch_answers_as_the_searches_one_by_one_and_a_bad_search_runs_none(
    make_settings: Callable[..., Settings], embedder: CountingEmbedder
) -> None:
    # Caches off: each single search and the batch compute their answers afresh, so equal answers are no echo.
    settings = make_settings(search_cache_ttl_s=0, embedding_cache_ttl_s=0)
    with RagStore.open(settings, embedder=embedder) as store, TestClient(create_app(store=store)) as client:
        store.collections.create("kb")
        store.documents.add("kb", DOCS)
        vector = embedder.embed(["환불 계좌"], kind="query")[0].tolist()
        searches = _searches(vector)
        singles = []
        for body in searches:
            answer = client.post("/v1/collections/kb/search", json=body)
            assert answer.status_code == 200, answer.text
            singles.append(answer.json())
        before = len(embedder.calls)
        answer = client.post(BATCH, json={"searches": searches})
        assert answer.status_code == 200, answer.text
        # The three searches with a text to embed (not lexical, no vector of their own) shared ONE model call,
        # for their two texts (two of them ask the same).
        assert embedder.calls[before:] == [2]
        results = answer.json()["results"]
        assert len(results) == len(searches)
        for batched, single in zip(results, singles, strict=True):
            _same(batched, single)
            assert batched["cached"] is False
        assert [r["mode"] for r in results] == ["hybrid", "lexical", "dense", "dense", "hybrid", "hybrid", "lexical"]
        assert all(h["metadata"]["n"] >= 2 for h in results[2]["hits"])
        assert {h["title"] for h in results[6]["hits"]} == {"doc0", "doc9"}
        assert results[4]["hits"][0]["explain"]["fused_score"] is not None
        # The facade gives the same.
        facade = store.search.batch("kb", [SearchRequest.model_validate(b) for b in searches])
        assert all(isinstance(r, SearchResponse) for r in facade)
        for batched, single in zip(facade, singles, strict=True):
            _same(batched.model_dump(mode="json"), single)

        # A bad search anywhere refuses the whole batch, naming it; nothing runs, nothing is logged.
        logged, calls = _logged(store), len(embedder.calls)
        schema_refused = client.post(BATCH, json={"searches": [*searches[:2], {"query": "x", "k": 0}]})
        assert schema_refused.status_code == 422 and "searches.2.k" in schema_refused.json()["error"]["message"]
        refusals = {
            3: {"vector": [0.5, 0.5], "k": 2},  # the collection's vectors have 384 dimensions
            1: {"query": "   "},
            4: {"vector": vector, "mode": "lexical"},
            5: {"query": "환불", "filter": {"n": {"$foo": 1}}},
        }
        for index, bad in refusals.items():
            body = {"searches": [*searches[:index], bad, *searches[index:]]}
            refused = client.post(BATCH, json=body)
            assert refused.status_code == 422, refused.text
            error = refused.json()["error"]
            assert error["message"].startswith(f"searches.{index}: ") and error["details"]["index"] == index
            with pytest.raises(InvalidInput, match=rf"^searches\.{index}: "):
                store.search.batch("kb", [SearchRequest.model_validate(b) for b in body["searches"]])
        too_many = client.post(BATCH, json={"searches": [{"query": "환불"}] * 101})
        assert too_many.status_code == 422 and "searches" in too_many.json()["error"]["message"]
        assert client.post(BATCH, json={"searches": []}).status_code == 422
        assert client.post("/v1/collections/nope/search/batch", json={"searches": searches[:1]}).status_code == 404
        with pytest.raises(InvalidInput, match="1 to 100 searches"):
            store.search.batch("kb", [SearchRequest(query="환불")] * 101)
        assert _logged(store) == logged and len(embedder.calls) == calls


def test_each_search_counts_once_for_the_rate_limit_and_the_usage_log_and_only_readers_may_batch(
    make_settings: Callable[..., Settings], embedder: CountingEmbedder
) -> None:
    settings = make_settings(auth="required", rate_limit_default="12/minute")
    with RagStore.open(settings, embedder=embedder) as store, TestClient(create_app(store=store)) as client:
        store.collections.create("kb")
        store.documents.add("kb", DOCS[:4])  # what counts here is the counting, not the ranking
        reader = {"Authorization": f"Bearer {store.keys.create('reader', 'read', ['kb']).key}"}
        watcher = {"Authorization": f"Bearer {store.keys.create('watcher', 'metrics', ['kb']).key}"}
        body = {"searches": [{"query": t, "k": 2, "mode": "lexical"} for t in TOPICS[:5]]}
        assert client.post(BATCH, json=body).status_code == 401
        assert client.post(BATCH, json=body, headers=watcher).status_code == 403
        first = client.post(BATCH, json=body, headers=reader)
        assert first.status_code == 200 and [r["query"] for r in first.json()["results"]] == TOPICS[:5]
        assert first.headers["ratelimit-remaining"] == "7"  # 12 - 5: the batch took one per search
        # The cache holds each search on its own: the batch again, and a single search of one of them, hit it.
        again = client.post(BATCH, json=body, headers=reader)
        assert again.status_code == 200 and all(r["cached"] for r in again.json()["results"])
        refused = client.post(BATCH, json=body, headers=reader)  # 5 more than the 2 left: refused whole
        assert refused.status_code == 429 and "retry-after" in refused.headers
        rows = [r for r in _usage(store) if r.route == "/v1/collections/{name}/search/batch"]
        # 401, 403, 5 searches, 5 searches, 429: a batch that ran is a row per search, a refused one a row.
        assert [r.status for r in rows] == [401, 403] + [200] * 10 + [429]
        ran = rows[2:7]
        assert sum(r.request_bytes for r in ran) == int(first.request.headers["content-length"])
        assert sum(r.response_bytes for r in ran) == len(first.content)
        assert {(r.api_key_id, r.collection) for r in rows[2:12]} == {(rows[2].api_key_id, "kb")}

        # The HTTP clients' twin of `store.search.batch`, against a real server.
        key = store.keys.create("client", "read", ["kb"]).key  # a budget of its own
        requests = [SearchRequest(query="환불", k=2, fusion="rrf"), SearchRequest(query="배송", mode="lexical", k=1)]
        with app_in_thread(create_app(store=store)) as url:
            with RagStoreClient(url, key) as remote:
                over_http = remote.search.batch("kb", requests)
                with pytest.raises(InvalidInput, match=r"searches\.1"):
                    remote.search.batch("kb", [requests[0], SearchRequest(query="x", k=1, offset=1000)])

            async def twice() -> list[SearchResponse]:
                async with AsyncRagStoreClient(url, key) as remote:
                    return await remote.search.batch("kb", requests)

            from_async = asyncio.run(twice())
        local = store.search.batch("kb", requests)
        for answers in (over_http, from_async):
            assert [[h.chunk_id for h in r.hits] for r in answers] == [[h.chunk_id for h in r.hits] for r in local]
