"""The cache layers: search results (L2) invalidated by every write, query embeddings (L1), the HTTP fast
path for cached results, and sharing through a real Redis with the documented keys."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient

from ragstore.api.app import create_app
from ragstore.cache.layers import CacheLayers
from ragstore.cache.memory import MemoryCache
from ragstore.cache.redis import RedisConnection
from ragstore.cache.versions import CollectionVersions
from ragstore.clock import ManualClock
from ragstore.config import Settings
from ragstore.db.identity import store_identity
from ragstore.service import RagStore

from conftest import CountingEmbedder, service_missing

REDIS_URL = os.environ.get("RAGSTORE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture
def shared_redis() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.RedisError as exc:
        service_missing(f"Redis at {REDIS_URL} is not available: {exc}")
    yield client
    client.close()


def test_a_repeated_search_is_cached_until_a_write_changes_the_collection(
    store: RagStore, embedder: CountingEmbedder
) -> None:
    store.collections.create("kb")
    store.documents.add_text("kb", "김치는 배추를 소금에 절여 담근다.")
    first = store.search("kb", "김치 담그는 법", k=3)
    calls = embedder.texts_embedded
    again = store.search("kb", "김치 담그는 법", k=3)
    assert first.cached is False and again.cached is True
    assert [h.chunk_id for h in again.hits] == [h.chunk_id for h in first.hits]
    assert embedder.texts_embedded == calls  # neither the query nor the search was redone
    added = store.documents.add_text("kb", "김치찌개는 잘 익은 김치로 끓인다.")
    after = store.search("kb", "김치 담그는 법", k=3)
    assert after.cached is False and added.document_id in {h.document_id for h in after.hits}
    store.documents.delete("kb", int(added.document_id or 0))
    gone = store.search("kb", "김치 담그는 법", k=3)
    assert gone.cached is False and added.document_id not in {h.document_id for h in gone.hits}
    stats = store.components.cache.stats()["search"]
    assert stats["hits"] == 1 and stats["misses"] == 3


def test_the_query_embedding_cache_spares_the_model(store: RagStore, embedder: CountingEmbedder) -> None:
    store.collections.create("kb")
    store.documents.add_text("kb", "The business plan allows 600 API requests per minute.")
    store.search("kb", "rate limit", k=1)
    calls = embedder.texts_embedded
    store.search("kb", "rate limit", k=2)  # another result-cache key, the same query text
    assert embedder.texts_embedded == calls
    assert store.components.cache.stats()["embeddings"]["hits"] == 1


def test_filters_and_k_are_part_of_the_result_key(store: RagStore) -> None:
    store.collections.create("kb")
    store.documents.add(
        "kb",
        [
            {"text": "refunds within 7 days", "metadata": {"lang": "en"}},
            {"text": "환불은 7일 안에", "metadata": {"lang": "ko"}},
        ],
    )
    english = store.search("kb", "refund", k=5, filter={"lang": "en"})
    korean = store.search("kb", "refund", k=5, filter={"lang": "ko"})
    assert not korean.cached and {h.text for h in english.hits} != {h.text for h in korean.hits}
    assert store.search("kb", "refund", k=1, filter={"lang": "en"}).cached is False


def test_the_http_fast_path_returns_what_the_full_path_returned(store: RagStore) -> None:
    store.collections.create("kb")
    store.documents.add_text("kb", "서울 지하철 환승 할인은 30분 안에 적용된다.")
    with TestClient(create_app(store=store)) as client:
        body = {"query": "지하철 환승", "k": 2}
        first = client.post("/v1/collections/kb/search", json=body).json()
        second = client.post("/v1/collections/kb/search", json=body).json()
        bad = client.post("/v1/collections/kb/search", json={"query": "지하철 환승", "k": 0})
    assert first["cached"] is False and second["cached"] is True
    for volatile in ("took_ms", "cached"):
        first.pop(volatile)
        second.pop(volatile)
    assert first == second
    assert bad.status_code == 422  # bad input never reaches the cache


def test_the_cached_answer_never_skips_validation(store: RagStore) -> None:
    """The middleware answers only bodies SearchRequest would accept; anything else gets FastAPI's own answer."""
    store.collections.create("kb")
    store.documents.add_text("kb", "서울 지하철 환승 할인은 30분 안에 적용된다.")
    with TestClient(create_app(store=store)) as client:
        url = "/v1/collections/kb/search"
        assert client.post(url, json={"query": "환승", "k": 2}).json()["cached"] is False
        assert client.post(url, json={"query": "환승", "k": 2}).json()["cached"] is True
        assert client.post(url, json={"query": "환승", "k": 2, "unknown": 1}).status_code == 422
        assert client.post(url, json={"query": "환승", "k": 2, "vector": [0.1]}).status_code == 422
        assert client.post(url, content=b"{not json", headers={"content-type": "application/json"}).status_code == 422
        coerced = client.post(url, json={"query": "환승", "k": "2"})  # pydantic's own coercion, then the cache
        assert coerced.status_code == 200 and coerced.json()["cached"] is True
        store.collections.delete("kb")
        assert client.post(url, json={"query": "환승", "k": 2}).status_code == 404


def test_the_in_process_cache_is_bounded_and_expires() -> None:
    clock = ManualClock()
    cache = MemoryCache(max_entries=2, clock=clock)
    cache.set("a", b"1", ttl_s=60)
    cache.set("b", b"2", ttl_s=60)
    cache.set("c", b"3", ttl_s=60)
    assert len(cache) == 2 and cache.get("a") is None
    cache.set("short", b"x", ttl_s=0.05)
    clock.advance(0.04)
    assert cache.get("short") == b"x"
    clock.advance(0.02)
    assert cache.get("short") is None
    assert cache.get("c") == b"3"  # a longer TTL outlives it


def test_every_cache_layer_ages_by_the_clock_it_is_given() -> None:
    clock = ManualClock()
    layers = CacheLayers(max_entries=10, embedding_ttl_s=60, search_ttl_s=5, session_ttl_s=600, clock=clock)
    for layer in layers.layers.values():
        layer.set(layer.key("k"), b"v")
    clock.advance(10)
    assert layers.search.get(layers.search.key("k")) is None
    assert layers.embeddings.get(layers.embeddings.key("k")) == b"v"
    clock.advance(60)
    assert layers.embeddings.get(layers.embeddings.key("k")) is None
    assert layers.sessions.get(layers.sessions.key("k")) == b"v"


def test_a_known_write_version_is_reused_only_for_max_age_s_by_the_clock() -> None:
    clock = ManualClock()
    reads: list[int] = []

    def read(collection_id: int) -> int:
        reads.append(collection_id)
        return 7

    class HealthyBus:
        healthy = True

    versions = CollectionVersions(read, HealthyBus(), max_age_s=1.0, clock=clock)  # type: ignore[arg-type]
    assert versions.current(1) == 7 and versions.current(1) == 7
    clock.advance(0.9)
    assert versions.known_without_waiting(1) == 7 and reads == [1]
    clock.advance(0.2)
    assert versions.current(1) == 7 and reads == [1, 1]  # too old: read again


def test_the_redis_breaker_stays_open_for_retry_after_s_by_the_clock() -> None:
    clock = ManualClock()
    connection = RedisConnection(
        "redis://127.0.0.1:1/0", max_connections=2, timeout_s=0.2, retry_after_s=30, clock=clock
    )
    try:
        assert connection.call("GET", connection.client.get, "k", default="miss") == "miss"
        assert not connection.available and connection.failures == 1
        clock.advance(29)
        assert connection.call("GET", connection.client.get, "k", default="skipped") == "skipped"
        assert connection.failures == 1  # not asked while the breaker is open
        clock.advance(2)
        assert connection.available
    finally:
        connection.close()


def test_a_redis_error_reply_degrades_the_cache_like_an_unreachable_redis() -> None:
    """A full Redis (maxmemory under a policy with nothing to evict) answers writes with an OOM error: the
    cache drops the entry and opens the breaker; the request that wanted the entry never sees it."""
    clock = ManualClock()
    connection = RedisConnection(
        "redis://127.0.0.1:1/0", max_connections=2, timeout_s=0.2, retry_after_s=30, clock=clock
    )

    def full(*args: Any, **kwargs: Any) -> None:
        raise redis.OutOfMemoryError("command not allowed when used memory > 'maxmemory'.")

    try:
        assert connection.call("SET", full, "k", b"v", default="dropped") == "dropped"
        assert not connection.available and connection.failures == 1
        assert connection.status()["status"] == "degraded"
        assert "OutOfMemoryError" in str(connection.last_error)
    finally:
        connection.close()


def test_caches_are_shared_through_redis_under_the_documented_keys(
    make_settings: Callable[..., Settings], embedder: Any, shared_redis: redis.Redis
) -> None:
    namespace = f"test-{uuid.uuid4().hex[:8]}"
    settings = make_settings(redis_url=REDIS_URL, cache_namespace=namespace)
    try:
        with RagStore.open(settings, embedder=embedder) as one, RagStore.open(settings, embedder=embedder) as two:
            one.collections.create("kb")
            one.documents.add_text("kb", "마라톤 훈련은 주 3회 이상 달리기로 시작한다.")
            assert one.search("kb", "마라톤 훈련", k=2).cached is False
            keys = sorted(k.decode() for k in shared_redis.scan_iter(f"{namespace}:*"))
            kb = one.components.catalog.resolve("kb").id
            store = f"{store_identity(one.db):x}"
            assert any(k.startswith(f"{namespace}:v1:emb:") for k in keys), keys
            assert any(k.startswith(f"{namespace}:v1:{store}:search:{kb}:") for k in keys), keys
            ttl = shared_redis.pttl(next(k for k in keys if ":search:" in k))
            assert 0 < ttl <= settings.search_cache_ttl_s * 1000
            shared = two.search("kb", "마라톤 훈련", k=2)  # another store (process): found in Redis
            assert shared.cached is True and two.components.cache.search.stats.hits_shared == 1
            assert two.ops.health().components.cache.backend == "memory+redis"
    finally:
        for key in shared_redis.scan_iter(f"{namespace}:*"):
            shared_redis.delete(key)


def test_two_databases_sharing_a_redis_never_see_each_others_results(
    make_settings: Callable[..., Settings], tmp_path: Path, embedder: Any, shared_redis: redis.Redis
) -> None:
    """Ids and versions restart in every database: keys carry the database's identity."""
    namespace = f"test-{uuid.uuid4().hex[:8]}"
    first = make_settings(redis_url=REDIS_URL, cache_namespace=namespace)
    second = Settings(data_dir=tmp_path / "other", redis_url=REDIS_URL, cache_namespace=namespace)
    try:
        with RagStore.open(first, embedder=embedder) as one, RagStore.open(second, embedder=embedder) as two:
            for store, text in ((one, "first database"), (two, "second database")):
                store.collections.create("kb", embedding_model="synthetic", dimension=4)
                store.documents.add("kb", [{"text": text, "chunks": [{"text": text, "vector": [1, 0, 0, 0]}]}])
            assert (
                one.components.catalog.resolve("kb").id == two.components.catalog.resolve("kb").id
            )  # the same id and version
            assert one.search("kb", vector=[1, 0, 0, 0]).hits[0].text == "first database"
            answer = two.search("kb", vector=[1, 0, 0, 0])
            assert answer.hits[0].text == "second database" and answer.cached is False
            assert store_identity(one.db) != store_identity(two.db)
    finally:
        for key in shared_redis.scan_iter(f"{namespace}:*"):
            shared_redis.delete(key)


def test_the_core_install_runs_without_redis_py_and_says_what_is_missing(tmp_path: Path) -> None:
    """`pip install ragstore` has no redis-py: nothing may import it unless REDIS_URL is set."""
    script = f"""
import sys
sys.modules["redis"] = None  # as if the package were not installed
from ragstore.config import Settings
from ragstore.db.identity import store_identity
from ragstore.errors import ConfigError
from ragstore.service import RagStore
with RagStore.open(Settings(data_dir={str(tmp_path / "a")!r}, vector_backend="memory")) as store:
    store.collections.create("kb", embedding_model="synthetic", dimension=4)
    store.documents.add("kb", [{{"text": "x", "chunks": [{{"text": "x", "vector": [1, 0, 0, 0]}}]}}])
    assert store.search("kb", vector=[1, 0, 0, 0]).hits
try:
    RagStore.open(Settings(data_dir={str(tmp_path / "b")!r}, redis_url="redis://127.0.0.1:1/0"))
except ConfigError as exc:
    print(exc.message)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "pip install 'ragstore[redis]'" in done.stdout
