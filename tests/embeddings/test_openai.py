"""The OpenAI backend against a local fake server that speaks the real wire format."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from ragstore import RagStore
from ragstore.config import Settings
from ragstore.db.models import EmbeddingUsage
from ragstore.embeddings.base import UsageRecord
from ragstore.embeddings.fake_openai import FakeOpenAI
from ragstore.embeddings.openai import OpenAIEmbedder
from ragstore.errors import InvalidInput, Unavailable

KEY = "sk-test-key-123"


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(api_key=KEY) as fake:
        yield fake


def make(server: FakeOpenAI, usage: list[UsageRecord] | None = None, **kwargs: object) -> OpenAIEmbedder:
    options: dict[str, object] = {"base_url": server.url, "max_retries": 3, "backoff_base_s": 0.001, "timeout_s": 5.0}
    options.update(kwargs)
    return OpenAIEmbedder(KEY, usage_sink=usage.append if usage is not None else None, **options)  # type: ignore[arg-type]


def test_vectors_are_ordered_normalised_and_deterministic(server: FakeOpenAI) -> None:
    embedder = make(server)
    vectors = embedder.embed(["alpha", "베타", "gamma"], kind="document")
    assert vectors.shape == (3, 1536) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    again = embedder.embed(["gamma"], kind="query")
    np.testing.assert_allclose(again[0], vectors[2], rtol=1e-6)  # the server reversed the order; we sorted


def test_batches_respect_the_input_limit(server: FakeOpenAI) -> None:
    usage: list[UsageRecord] = []
    vectors = make(server, usage, dimensions=32).embed([f"text {i}" for i in range(5000)], kind="document")
    assert vectors.shape == (5000, 32)
    assert all(r["dimensions"] == 32 for r in server.requests)
    assert [len(r["input"]) for r in server.requests] == [2048, 2048, 904]
    assert [u.inputs for u in usage] == [2048, 2048, 904]
    assert all(u.tokens > 0 and u.cost_usd > 0 for u in usage)


def test_batches_respect_the_token_budget(server: FakeOpenAI) -> None:
    long_text = "word " * 4500  # about 7,500 estimated tokens each: 39 fit in one 300,000-token request
    groups = make(server).batches([long_text] * 100)
    assert [len(g) for g in groups] == [39, 39, 22]


def test_an_oversized_or_empty_input_is_refused_before_any_request(server: FakeOpenAI) -> None:
    embedder = make(server)
    with pytest.raises(InvalidInput, match="input 1 is about"):
        embedder.embed(["ok", "x" * 40_000], kind="document")
    with pytest.raises(InvalidInput, match="input 0 is empty"):
        embedder.embed([""], kind="document")
    assert server.requests == []


def test_429_is_retried_honouring_retry_after(server: FakeOpenAI) -> None:
    usage: list[UsageRecord] = []
    server.fail_next(429, times=2, retry_after=0)
    vectors = make(server, usage).embed(["hello"], kind="document")
    assert vectors.shape == (1, 1536)
    assert len(server.requests) == 3
    assert usage[0].attempts == 3


def test_5xx_beyond_the_retries_is_unavailable(server: FakeOpenAI) -> None:
    server.fail_next(500, times=10, message="the engine is overloaded")
    with pytest.raises(Unavailable, match="overloaded"):
        make(server, max_retries=2).embed(["hello"], kind="document")
    assert len(server.requests) == 3


def test_a_wrong_key_is_not_retried_and_not_printed(server: FakeOpenAI) -> None:
    embedder = OpenAIEmbedder("sk-wrong-secret", base_url=server.url, max_retries=3, backoff_base_s=0.001)
    with pytest.raises(Unavailable, match="rejected the API key") as excinfo:
        embedder.embed(["hello"], kind="document")
    assert "sk-wrong-secret" not in str(excinfo.value)


def test_a_timeout_is_retried_then_unavailable() -> None:
    with FakeOpenAI(api_key=KEY, delay_s=0.5) as slow:
        embedder = OpenAIEmbedder(KEY, base_url=slow.url, timeout_s=0.1, max_retries=1, backoff_base_s=0.001)
        with pytest.raises(Unavailable, match="Timeout"):
            embedder.embed(["hello"], kind="document")
        assert len(slow.requests) == 2


def test_a_dimension_mismatch_is_unavailable() -> None:
    with FakeOpenAI(api_key=KEY, dimension_override=8) as odd, pytest.raises(Unavailable, match="shape"):
        OpenAIEmbedder(KEY, base_url=odd.url).embed(["hello"], kind="document")


def test_the_store_records_cost_per_call(server: FakeOpenAI, tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path / "data",
        embedding_backend="openai",
        openai_api_key=KEY,
        openai_base_url=server.url,
    )
    with RagStore.open(settings) as store:
        store.collections.create("kb")
        assert store.collections.get("kb").dimension == 1536
        store.documents.add_text("kb", "첫 번째 문서입니다.")
        store.documents.add_text("kb", "첫 번째 문서입니다.")  # unchanged: no second call
        hits = store.search("kb", "첫 번째 문서입니다.", k=1, mode="dense").hits
        assert hits and hits[0].score == pytest.approx(1.0, abs=1e-4)
        with store.db.read() as s:
            rows = list(s.scalars(select(EmbeddingUsage)))
    assert len(server.requests) == 2  # one ingest, one query
    assert [r.backend for r in rows] == ["openai", "openai"]
    assert all(r.tokens > 0 and r.cost_usd > 0 for r in rows)
