"""Dense, lexical and hybrid search: fusion and its explanation, filters applied inside each backend,
pagination by offset and cursor, min_score, the result cache keyed on all of it, and the API and CLI."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ragstore import RagStore
from ragstore.errors import InvalidInput
from ragstore.search.hybrid import rrf

DOCS: list[dict[str, Any]] = [
    {
        "title": f"doc{i}",
        "text": f"{topic} 안내 문서 {i}번. 이 문서는 {topic}에 관한 내용을 담고 있습니다.",
        "metadata": {"n": i, "lang": "ko", "published": f"2024-0{1 + i % 9}-15", "team": "a" if i % 2 else "b"},
    }
    for i, topic in enumerate(
        ["환불", "배송", "연차", "보험", "환불 규정", "반품", "환불 기간", "교환", "결제", "환불 계좌"]
    )
]


EXPLAINED = {
    "dense_rank",
    "dense_score",
    "lexical_rank",
    "lexical_score",
    "lexical_coverage",
    "companion_score",
    "fused_score",
}


@pytest.fixture
def kb(store: RagStore) -> RagStore:
    store.collections.create("kb")
    store.documents.add("kb", DOCS)
    return store


def test_rrf_fuses_ranks_with_weights() -> None:
    fused = rrf([1, 2, 3], [3, 4], k=60, dense_weight=1.0, lexical_weight=1.0)
    assert fused[3] == pytest.approx(1 / 63 + 1 / 61)
    assert max(fused, key=fused.__getitem__) == 3  # proposed by both sides
    only_dense = rrf([1, 2], [2], k=60, dense_weight=1.0, lexical_weight=0.0)
    assert only_dense[1] > only_dense[2]


def test_modes_and_explain(kb: RagStore) -> None:
    hybrid = kb.search("kb", "환불 계좌", k=5, explain=True, fusion="rrf")
    assert hybrid.mode == "hybrid" and hybrid.hits
    for hit in hybrid.hits:
        e = hit.explain
        assert e is not None and set(e) == EXPLAINED and e["companion_score"] is None
        expected = sum(1 / (60 + r) for r in (e["dense_rank"], e["lexical_rank"]) if r is not None)
        assert e["fused_score"] == pytest.approx(expected, abs=1e-6) and hit.score == e["fused_score"]
    assert [h.score for h in hybrid.hits] == sorted((h.score for h in hybrid.hits), reverse=True)
    bridged = kb.search("kb", "환불 계좌", k=5, explain=True)  # the default fusion
    assert bridged.mode == "hybrid" and bridged.hits
    for hit in bridged.hits:
        e = hit.explain
        assert e is not None and set(e) == EXPLAINED and hit.score == e["fused_score"]
        # Both cosines are known for every candidate, whichever side proposed it.
        assert -1 <= e["dense_score"] <= 1 and -1 <= e["companion_score"] <= 1
    assert [h.score for h in bridged.hits] == sorted((h.score for h in bridged.hits), reverse=True)
    lexical = kb.search("kb", "환불", k=10, mode="lexical")
    assert lexical.mode == "lexical"
    assert {h.title for h in lexical.hits} == {"doc0", "doc4", "doc6", "doc9"}
    dense = kb.search("kb", "환불", k=3, mode="dense", explain=True)
    assert dense.mode == "dense" and dense.hits[0].explain["lexical_rank"] is None  # type: ignore[index]
    assert kb.search("kb", "환불", k=3).hits[0].explain is None
    weights = kb.search("kb", "환불 계좌", k=10, dense_weight=0.0, explain=True)
    assert all(h.explain["lexical_rank"] is not None for h in weights.hits)  # type: ignore[index]


def test_filters_run_inside_each_mode(kb: RagStore) -> None:
    for mode in ("dense", "lexical", "hybrid"):
        # A filter that keeps one document out of ten still fills the page from inside the backend.
        hits = kb.search("kb", "환불", k=3, mode=mode, filter={"n": {"$gte": 9}}).hits
        assert [h.title for h in hits] == ["doc9"], mode
        team = kb.search("kb", "환불", k=10, mode=mode, filter={"team": "a", "n": {"$in": [1, 3, 5, 7, 9]}}).hits
        assert {h.metadata["team"] for h in team} == {"a"}
        dated = kb.search(
            "kb", "문서", k=10, mode=mode, filter={"published": {"$gte": "2024-05-01", "$lt": "2024-08-01"}}
        )
        assert sorted(h.metadata["published"] for h in dated.hits) == ["2024-05-15", "2024-06-15", "2024-07-15"]
        assert kb.search("kb", "환불", k=3, mode=mode, filter={"title": "doc4"}).hits[0].title == "doc4"


def test_pagination_by_offset_and_cursor(kb: RagStore) -> None:
    for mode in ("dense", "lexical", "hybrid"):
        whole = [h.chunk_id for h in kb.search("kb", "문서 안내", k=10, mode=mode).hits]
        assert len(whole) == 10
        pages: list[int] = []
        cursor = None
        for _ in range(5):
            page = kb.search("kb", "문서 안내", k=3, mode=mode, cursor=cursor)
            pages += [h.chunk_id for h in page.hits]
            cursor = page.next_cursor
            if cursor is None:
                break
        assert pages == whole, mode
        assert [h.chunk_id for h in kb.search("kb", "문서 안내", k=3, mode=mode, offset=3).hits] == whole[3:6]
    first = kb.search("kb", "문서 안내", k=3)
    assert first.next_cursor is not None
    with pytest.raises(InvalidInput, match="another search"):
        kb.search("kb", "다른 질문", k=3, cursor=first.next_cursor)
    with pytest.raises(InvalidInput, match="not one this server issued"):
        kb.search("kb", "문서 안내", k=3, cursor="garbage!")
    with pytest.raises(InvalidInput, match="offset or cursor"):
        kb.search("kb", "문서 안내", k=3, offset=3, cursor=first.next_cursor)
    with pytest.raises(InvalidInput, match="offset \\+ k"):
        kb.search("kb", "문서 안내", k=10, offset=995)


def test_min_score(kb: RagStore) -> None:
    dense = kb.search("kb", "환불", k=10, mode="dense").hits
    cut = dense[2].score
    kept = kb.search("kb", "환불", k=10, mode="dense", min_score=cut).hits
    assert kept and all(h.score >= cut for h in kept) and len(kept) < len(dense)
    assert kb.search("kb", "환불", k=10, min_score=1.0, fusion="rrf").hits == []  # an RRF score never reaches 1
    bridged = kb.search("kb", "환불", k=10).hits  # bridge scores are sums of z-scores: any real number
    kept = kb.search("kb", "환불", k=10, min_score=bridged[1].score).hits
    assert [h.chunk_id for h in kept] == [h.chunk_id for h in bridged[:2]]


def test_the_result_cache_keys_on_every_option(kb: RagStore) -> None:
    first = kb.search("kb", "환불", k=3, mode="lexical")
    again = kb.search("kb", "환불", k=3, mode="lexical")
    assert not first.cached and again.cached and again.hits == first.hits and again.mode == "lexical"
    assert not kb.search("kb", "환불", k=3, mode="dense").cached
    assert not kb.search("kb", "환불", k=3, mode="lexical", offset=1).cached
    assert not kb.search("kb", "환불", k=3, mode="lexical", explain=True).cached
    kb.documents.add_text("kb", "환불 새 문서")
    assert not kb.search("kb", "환불", k=3, mode="lexical").cached  # a write invalidates


def test_bad_options_are_refused(kb: RagStore) -> None:
    for bad in (
        {"mode": "fuzzy"},
        {"offset": -1},
        {"rrf_k": 0},
        {"dense_weight": -1.0},
        {"min_score": float("nan")},
        {"fusion": "sum"},
    ):
        with pytest.raises(InvalidInput):
            kb.search("kb", "환불", **bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="lexical search needs a query"):
        kb.search("kb", vector=[0.0] * kb.collections.get("kb").dimension, mode="lexical")


def test_api_search_feedback_and_analytics(kb: RagStore) -> None:
    from ragstore.api.app import create_app

    with TestClient(create_app(store=kb)) as client:
        url = "/v1/collections/kb"
        body = {"query": "환불", "k": 3, "mode": "hybrid", "explain": True}
        first = client.post(f"{url}/search", json=body).json()
        assert first["mode"] == "hybrid" and first["hits"][0]["explain"]["fused_score"] > 0
        cached = client.post(f"{url}/search", json=body).json()  # answered by the event-loop fast path
        assert cached["cached"] and cached["hits"] == first["hits"] and cached["next_cursor"] == first["next_cursor"]
        second = client.post(f"{url}/search", json={**body, "cursor": first["next_cursor"]}).json()
        assert second["offset"] == 3 and {h["chunk_id"] for h in second["hits"]}.isdisjoint(
            h["chunk_id"] for h in first["hits"]
        )
        for bad in ({"mode": "fuzzy"}, {"offset": -1}, {"cursor": "nope"}, {"rrf_k": 0}, {"explain": "maybe"}):
            response = client.post(f"{url}/search", json={"query": "환불", **bad})
            assert response.status_code in (400, 422), bad
        chunk_id = first["hits"][0]["chunk_id"]
        ok = client.post(f"{url}/feedback", json={"query": "환불", "chunk_id": chunk_id, "relevant": True})
        assert ok.status_code == 201 and ok.json()["id"] > 0
        client.post(
            f"{url}/feedback", json={"query": "환불", "chunk_id": first["hits"][1]["chunk_id"], "relevant": False}
        )
        assert (
            client.post(f"{url}/feedback", json={"query": "환불", "chunk_id": 10**9, "relevant": True}).status_code
            == 404
        )
        assert (
            client.post(f"{url}/feedback", json={"query": "", "chunk_id": chunk_id, "relevant": True}).status_code
            == 422
        )
        report = client.get(f"{url}/analytics").json()
        assert report["queries"]["total"] >= 3 and report["queries"]["cache_hits"] >= 1
        assert report["queries"]["by_mode"]["hybrid"] >= 3
        assert report["top_queries"][0]["query"] == "환불"
        assert report["feedback"] == {"total": 2, "relevant": 1, "irrelevant": 1, "precision": 0.5}
        assert report["chunks"]["most_relevant"][0]["chunk_id"] == chunk_id
        assert report["chunks"]["most_returned"][0]["returned"] >= 2
        assert client.get(f"{url}/analytics?days=0").status_code == 422
        assert client.get("/v1/collections/nope/analytics").status_code == 404


def test_zero_result_queries_are_reported(kb: RagStore) -> None:
    kb.search("kb", "우주 정거장", mode="lexical")
    report = kb.analytics.summary("kb")
    assert [q.model_dump() for q in report.zero_result_queries] == [{"query": "우주 정거장", "count": 1}]


def test_cli_search_modes(kb: RagStore, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from ragstore.cli import app

    settings = kb.settings
    kb.close()
    monkeypatch.setenv("RAGSTORE_DATA_DIR", str(settings.data_dir))
    if settings.database_url:
        monkeypatch.setenv("DATABASE_URL", settings.database_url)
    runner = CliRunner()
    result = runner.invoke(app, ["search", "환불", "-c", "kb", "--mode", "lexical", "--explain", "--json", "-k", "2"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["mode"] == "lexical" and data["hits"][0]["explain"]["lexical_rank"] == 1
    bad = runner.invoke(app, ["search", "환불", "-c", "kb", "--mode", "fuzzy"])
    assert bad.exit_code != 0 and "mode" in bad.output
    status = runner.invoke(app, ["index", "status", "--json"])
    assert json.loads(status.stdout)["lexical"]["collections"][0]["current"] is True
    relex = runner.invoke(app, ["index", "relex", "-c", "kb"])
    assert relex.exit_code == 0 and "10 chunks" in relex.stdout


def test_the_query_log_is_pruned_and_can_be_turned_off(kb: RagStore) -> None:
    from datetime import timedelta

    from sqlalchemy import func, select

    from ragstore.db.models import QueryLog, utcnow

    kb.search("kb", "환불")
    kb.components.recorder.flush()
    collection_id = kb.components.catalog.resolve("kb").id
    old = utcnow() - timedelta(days=kb.settings.query_log_retain_days + 1)
    kb.db.write(
        lambda s: s.add(
            QueryLog(
                collection_id=collection_id,
                query="오래된 질문",
                mode="hybrid",
                k=10,
                result_count=1,
                latency_ms=1.0,
                cache_hit=False,
                filtered=False,
                created_at=old,
            )
        )
    )
    assert kb.components.recorder.prune() == 1
    with kb.db.read() as s:
        assert s.scalar(select(func.count()).select_from(QueryLog)) == 1
    kb.components.recorder.enabled = False
    kb.search("kb", "배송")
    assert kb.components.recorder.flush() == 0


def test_filters_on_document_dates(kb: RagStore) -> None:
    from datetime import UTC, datetime, timedelta

    now = datetime.now(UTC)
    for mode in ("dense", "lexical", "hybrid"):
        recent = kb.search(
            "kb", "환불", k=10, mode=mode, filter={"created_at": {"$gte": (now - timedelta(hours=1)).isoformat()}}
        )
        assert recent.hits, mode
        future = kb.search(
            "kb", "환불", k=10, mode=mode, filter={"created_at": {"$gt": (now + timedelta(days=1)).date().isoformat()}}
        )
        assert future.hits == [], mode
        kst = (now + timedelta(hours=9, minutes=-60)).replace(tzinfo=None).isoformat() + "+09:00"
        assert kb.search("kb", "환불", k=10, mode=mode, filter={"created_at": {"$gte": kst}}).hits, mode
    with pytest.raises(InvalidInput, match="ISO 8601"):
        kb.search("kb", "환불", filter={"created_at": {"$gte": "yesterday"}})
    with pytest.raises(InvalidInput, match="ISO 8601"):
        kb.search("kb", "환불", filter={"updated_at": 5})
