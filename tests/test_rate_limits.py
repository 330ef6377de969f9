"""Rate limits over HTTP: 429 with Retry-After and RateLimit-* headers, per key, user, role and address,
the cost of an ingest by its size, the cap on requests in flight (real concurrent requests to a uvicorn
server), and Redis: shared counts, and when it goes away, memory per process and a degraded health, until
it returns. Limits are per hour where counts are asserted exactly: the sliding window weighs the previous
window's count, so a boundary crossed mid-test would blur them."""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import redis
from fastapi import FastAPI
from fastapi.testclient import TestClient

from limits_helpers import PrincipalFromHeader, Proxy, principal_header
from ragstore.api.app import create_app
from ragstore.clock import ManualClock
from ragstore.config import Settings
from ragstore.db.security_models import ApiKey
from ragstore.security.principal import Principal, PrincipalKind, Role
from ragstore.security.ratelimit import COST_UNIT_BYTES, LOGIN_PATH, MAX_COST, RateLimiter, route_cost
from ragstore.service import RagStore

from conftest import CountingEmbedder, service_missing

REDIS_URL = os.environ.get("RAGSTORE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
CLOSED_PORT = 18499  # in this suite's range; nothing listens there
PROXY_PORT = 18401
SERVER_PORT = 18402


def _app(store: RagStore) -> FastAPI:
    app = create_app(store=store)
    app.add_middleware(PrincipalFromHeader)  # outermost, as api/auth.py will be: it sets the principal
    return app


@pytest.fixture
def open_store(make_settings: Callable[..., Settings], embedder: CountingEmbedder) -> Iterator[Callable[..., RagStore]]:
    opened: list[RagStore] = []

    def open_(clock: ManualClock | None = None, **overrides: Any) -> RagStore:
        overrides.setdefault("auth", "required")
        store = RagStore.open(make_settings(**overrides), embedder=embedder, clock=clock or ManualClock())
        opened.append(store)
        return store

    yield open_
    for store in opened:
        store.close()


def _key(ident: int, role: str = "read") -> dict[str, str]:
    return principal_header("key", ident, role)


def test_a_key_over_its_limit_gets_429_with_retry_after_and_ratelimit_headers(
    open_store: Callable[..., RagStore],
) -> None:
    store = open_store(rate_limit_default="3/hour")
    with TestClient(_app(store)) as client:
        answers = [client.get("/v1/collections", headers=_key(7)) for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert [a.headers["RateLimit-Remaining"] for a in answers[:3]] == ["2", "1", "0"]
    assert all(a.headers["RateLimit-Limit"] == "3" for a in answers)
    refused = answers[3]
    assert 1 <= int(refused.headers["Retry-After"]) <= 7200
    assert 0 <= int(refused.headers["RateLimit-Reset"]) <= 7200 and refused.headers["RateLimit-Remaining"] == "0"
    error = refused.json()["error"]
    assert error["code"] == "rate_limited" and "RAGSTORE_RATE_LIMIT_DEFAULT" in error["message"]
    assert "retry-after" not in answers[0].headers
    # Another key has a budget of its own.
    with TestClient(_app(store)) as client:
        assert client.get("/v1/collections", headers=_key(8)).status_code == 200
    assert store.components.rate_limiter.status()["refused"] == 1


def test_users_anonymous_callers_and_login_are_counted_apart(open_store: Callable[..., RagStore]) -> None:
    store = open_store(rate_limit_default="2/hour", rate_limit_anonymous="1/hour", rate_limit_login="2/hour")
    user = principal_header("user", 3, "write")
    with TestClient(_app(store)) as client:
        assert [client.get("/v1/collections", headers=user).status_code for _ in range(3)] == [200, 200, 429]
        # Nobody proved anything (auth required): limited by address, whatever the route answers.
        assert [client.get("/health").status_code for _ in range(2)] == [200, 429]
        # The login route is limited by address on its own budget (wrong passwords here: 401, then 429).
        logins = [client.post(LOGIN_PATH, json={"email": "a@b.c", "password": "x"}) for _ in range(3)]
        assert [a.status_code for a in logins] == [401, 401, 429]
        assert "RAGSTORE_RATE_LIMIT_LOGIN" in logins[2].json()["error"]["message"]


def test_the_local_operator_is_not_limited_when_auth_is_off(open_store: Callable[..., RagStore]) -> None:
    store = open_store(auth="off", rate_limit_default="1/hour", rate_limit_anonymous="1/hour")
    with TestClient(_app(store)) as client:
        answers = [client.get("/v1/collections") for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert "ratelimit-limit" not in answers[0].headers


def test_roles_and_a_keys_own_limit_override_the_default(open_store: Callable[..., RagStore]) -> None:
    store = open_store(rate_limit_default="1/hour", rate_limit_roles="read=2/hour;admin=4/hour")
    own = ApiKey(key_id="ownlimit", secret_hash="0" * 64, name="own", rate_limit="3/hour")
    store.db.write(lambda s: s.add(own))
    with TestClient(_app(store)) as client:
        reads = [client.get("/v1/collections", headers=_key(101, "read")).status_code for _ in range(3)]
        admins = [client.get("/v1/collections", headers=_key(102, "admin")).status_code for _ in range(5)]
        writes = [client.get("/v1/collections", headers=_key(103, "write")).status_code for _ in range(2)]
        owns = [client.get("/v1/collections", headers=_key(own.id, "read")) for _ in range(4)]
    assert reads == [200, 200, 429]
    assert admins == [200, 200, 200, 200, 429]
    assert writes == [200, 429]  # no override for write: the default
    assert [a.status_code for a in owns] == [200, 200, 200, 429]  # the key's own limit beats its role's
    assert owns[0].headers["RateLimit-Limit"] == "3"
    assert "api_keys.rate_limit" in owns[3].json()["error"]["message"]


def test_a_keys_own_limit_is_read_again_after_a_minute(open_store: Callable[..., RagStore]) -> None:
    clock = ManualClock()
    store = open_store(clock=clock, rate_limit_default="100/minute")
    key = ApiKey(key_id="changing", secret_hash="0" * 64, name="changing", rate_limit="7/minute")
    store.db.write(lambda s: s.add(key))
    limiter = store.components.rate_limiter
    with TestClient(_app(store)) as client:
        assert client.get("/health", headers=_key(key.id)).headers["RateLimit-Limit"] == "7"
        store.db.write(lambda s: s.get(ApiKey, key.id).__setattr__("rate_limit", "9/minute"))
        assert client.get("/health", headers=_key(key.id)).headers["RateLimit-Limit"] == "7"  # cached
        clock.advance(61)
        assert client.get("/health", headers=_key(key.id)).headers["RateLimit-Limit"] == "9"
        store.db.write(lambda s: s.get(ApiKey, key.id).__setattr__("rate_limit", None))
        limiter.forget_key(key.id)  # what changing a key's limit calls: at once, not within a minute
        assert client.get("/health", headers=_key(key.id)).headers["RateLimit-Limit"] == "100"
        store.db.write(lambda s: s.get(ApiKey, key.id).__setattr__("rate_limit", "lots"))
        limiter.forget_key(key.id)
        assert client.get("/health", headers=_key(key.id)).headers["RateLimit-Limit"] == "100"  # unreadable: ignored


def test_an_ingest_costs_by_its_size() -> None:
    documents = "/v1/collections/kb/documents"
    assert route_cost("POST", "/v1/collections/kb/search", 10_000) == 1
    assert route_cost("GET", documents, None) == 1
    assert route_cost("POST", documents, 100) == 1
    assert route_cost("POST", documents, 3 * COST_UNIT_BYTES + 1) == 4
    assert route_cost("POST", documents, 10**12) == MAX_COST
    assert route_cost("POST", documents, None) == 1  # no declared length: charged by its bytes afterwards


def test_the_cost_comes_off_the_budget_and_never_exceeds_the_limit(open_store: Callable[..., RagStore]) -> None:
    store = open_store(rate_limit_default="10/hour", rate_limit_roles="admin=2/hour")
    body = b"x" * (3 * COST_UNIT_BYTES)
    headers = {**_key(5, "write"), "content-type": "text/plain", "x-requested-with": "test"}
    with TestClient(_app(store)) as client:
        first = client.post("/v1/collections/kb/documents", content=body, headers=headers)
        assert first.headers["RateLimit-Remaining"] == "6"  # 1 + 3 per 64 KiB
        second = client.post("/v1/collections/kb/documents", content=body, headers=headers)
        assert second.headers["RateLimit-Remaining"] == "2"
        third = client.post("/v1/collections/kb/documents", content=body, headers=headers)
        assert third.status_code == 429
        search = client.post("/v1/collections/kb/search", json={"query": "x"}, headers=_key(5, "write"))
        assert search.status_code != 429 and search.headers["RateLimit-Remaining"] == "1"
        # A chunked upload (no Content-Length) is admitted at 1 and charged afterwards by the bytes the app read.
        padded = json.dumps({"text": 1, "pad": "x" * (3 * COST_UNIT_BYTES)}).encode()
        chunked = client.post(
            "/v1/collections/kb/documents",
            content=iter([padded[: COST_UNIT_BYTES * 2], padded[COST_UNIT_BYTES * 2 :]]),
            headers={"content-type": "application/json", **_key(10, "write")},
        )
        assert "content-length" not in chunked.request.headers
        assert chunked.status_code != 429 and chunked.headers["RateLimit-Remaining"] == "9"
        after = client.get("/v1/collections", headers=_key(10, "write"))
        assert after.headers["RateLimit-Remaining"] == "5"  # 1 + 3 for the upload, 1 for this request
        # A request dearer than the whole limit is charged the limit, so it can pass once the window is clear.
        big = client.post("/v1/collections/kb/documents", content=body, headers={**headers, **_key(6, "admin")})
        assert big.status_code != 429 and big.headers["RateLimit-Remaining"] == "0"


def test_the_window_moves_on(open_store: Callable[..., RagStore]) -> None:
    """`limits` reads the system clock, so this one waits a tiny window out (at most a few seconds)."""
    store = open_store(rate_limit_default="2/second")
    with TestClient(_app(store)) as client:
        # Over the limit within a few requests (a second boundary may fall between them on a busy machine)...
        statuses: list[int] = []
        while 429 not in statuses:
            statuses.append(client.get("/health", headers=_key(9)).status_code)
            assert len(statuses) <= 10
        assert statuses[:2] == [200, 200]
        # ...and let in again once the window has moved on.
        deadline = time.monotonic() + 5
        while client.get("/health", headers=_key(9)).status_code == 429:
            assert time.monotonic() < deadline, "the window never moved on"
            time.sleep(0.1)


def test_the_cap_on_requests_in_flight_with_a_real_server(open_store: Callable[..., RagStore]) -> None:
    import uvicorn

    store = open_store(max_concurrent_requests=2, rate_limit_default="1000/minute")
    app = _app(store)
    release = threading.Event()
    entered = threading.Semaphore(0)

    @app.get("/test/hold")
    def hold() -> dict[str, bool]:
        entered.release()
        return {"released": release.wait(30)}

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=SERVER_PORT, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the server did not start"
        time.sleep(0.02)
    base = f"http://127.0.0.1:{SERVER_PORT}"
    results: list[int] = []
    try:
        holders = [
            threading.Thread(
                target=lambda: results.append(httpx.get(f"{base}/test/hold", headers=_key(1), timeout=30).status_code)
            )
            for _ in range(2)
        ]
        for t in holders:
            t.start()
        assert entered.acquire(timeout=30) and entered.acquire(timeout=30)  # both are inside the route
        assert store.components.rate_limiter.in_flight("key:1") == 2
        third = httpx.get(f"{base}/v1/collections", headers=_key(1), timeout=30)
        assert third.status_code == 429 and third.headers["Retry-After"] == "1"
        assert "MAX_CONCURRENT_REQUESTS" in third.json()["error"]["message"]
        # Another key is not held up by this one's requests.
        assert httpx.get(f"{base}/v1/collections", headers=_key(2), timeout=30).status_code == 200
        release.set()
        for t in holders:
            t.join(30)
        assert results == [200, 200]
        assert store.components.rate_limiter.in_flight("key:1") == 0
        assert httpx.get(f"{base}/v1/collections", headers=_key(1), timeout=30).status_code == 200
    finally:
        release.set()
        server.should_exit = True
        thread.join(10)


def test_counting_in_memory_starts_no_thread_per_request(tmp_path: Any) -> None:
    """Counting in memory starts no thread (limits' MemoryStorage started a timer thread every 10 ms of traffic)."""
    limiter = RateLimiter(Settings(data_dir=tmp_path, rate_limit_default="1000000/minute"), key_limit=lambda k: None)
    asyncio.run(_admit(limiter, 5))
    before = threading.active_count()
    started = time.monotonic()
    while time.monotonic() - started < 0.1:  # traffic spread over more than ten of the library's 10 ms timers
        asyncio.run(_admit(limiter, 20))
    assert threading.active_count() <= before
    assert all(not isinstance(t, threading.Timer) or not t.is_alive() for t in threading.enumerate())


def test_bad_rate_limit_settings_are_refused_naming_the_variable(tmp_path: Any) -> None:
    with pytest.raises(ValueError, match="RAGSTORE_RATE_LIMIT_ROLES"):
        Settings(data_dir=tmp_path, rate_limit_roles="read=lots")
    with pytest.raises(ValueError, match="RAGSTORE_RATE_LIMIT_ROLES"):
        Settings(data_dir=tmp_path, rate_limit_roles="owner=10/minute")
    with pytest.raises(ValueError, match="RAGSTORE_RATE_LIMIT_DEFAULT"):
        Settings(data_dir=tmp_path, rate_limit_default="600 a minute")
    with pytest.raises(ValueError, match="RAGSTORE_RATE_LIMIT_LOGIN"):
        Settings(data_dir=tmp_path, rate_limit_login="0/minute")
    ok = Settings(data_dir=tmp_path, rate_limit_roles=" read=1200/minute ; admin = 10 per second ")
    assert ok.rate_limit_roles


def test_every_route_documents_429(tmp_path: Any) -> None:
    document = create_app(Settings(data_dir=tmp_path)).openapi()
    missing = [
        f"{method.upper()} {path}"
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if "429" not in operation["responses"]
    ]
    assert not missing
    assert "/v1/usage" in document["paths"]


# -- Redis --------------------------------------------------------------------------------------------------
@pytest.fixture
def shared_redis() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.RedisError as exc:
        service_missing(f"Redis at {REDIS_URL} is not available: {exc}")
    yield client
    client.close()


def _limiter(url: str, namespace: str, clock: ManualClock, **overrides: Any) -> RateLimiter:
    settings = Settings(
        redis_url=url, cache_namespace=namespace, rate_limit_default="3/hour", redis_retry_after_s=5, **overrides
    )
    return RateLimiter(settings, key_limit=lambda key_id: None, clock=clock)


KEY = Principal(PrincipalKind.KEY, "k", {"*": Role.READ}, key_id=42)


async def _admit(limiter: RateLimiter, n: int) -> list[bool]:
    allowed = []
    for _ in range(n):
        bucket = await limiter.bucket_for(KEY, "127.0.0.1", "/v1/collections")
        assert bucket is not None
        admission = await limiter.admit(bucket, 1)
        limiter.release(admission)
        allowed.append(admission.allowed)
    return allowed


def test_processes_share_their_counts_through_redis(shared_redis: redis.Redis) -> None:
    namespace = f"test-{uuid.uuid4().hex[:8]}"
    clock = ManualClock()
    one, two = _limiter(REDIS_URL, namespace, clock), _limiter(REDIS_URL, namespace, clock)
    try:
        assert asyncio.run(_admit(one, 2)) == [True, True]
        assert asyncio.run(_admit(two, 2)) == [True, False]  # the second process sees the first one's requests
        assert list(shared_redis.scan_iter(f"{namespace}:ratelimit:*"))
        assert one.status()["status"] == "ok" and one.status()["counting_in"] == "redis"
    finally:
        for key in shared_redis.scan_iter(f"{namespace}:*"):
            shared_redis.delete(key)


def test_redis_down_falls_back_to_memory_and_recovers(shared_redis: redis.Redis) -> None:
    """Redis is "taken away" by closing a forwarding port of this suite's own; the shared server runs on."""
    host, port = (
        shared_redis.connection_pool.connection_kwargs["host"],
        shared_redis.connection_pool.connection_kwargs["port"],
    )
    namespace = f"test-{uuid.uuid4().hex[:8]}"
    clock = ManualClock()
    limiter = _limiter(f"redis://127.0.0.1:{PROXY_PORT}/0", namespace, clock)
    proxy = Proxy(PROXY_PORT, (host, port))

    async def scenario() -> None:
        # Down from the start: every request is still answered, counted in memory, and the limit holds.
        assert await _admit(limiter, 4) == [True, True, True, False]
        status = limiter.status()
        assert status["status"] == "degraded" and status["counting_in"] == "memory" and status["error"]
        assert status["fallbacks"] == 4
        # Redis returns; after the breaker's wait the limiter counts there again, and health is ok.
        proxy.start()
        assert (await _admit(limiter, 1))[0] is False  # the breaker is still open: memory, still over
        clock.advance(6)
        assert await _admit(limiter, 1) == [True]  # Redis holds a fresh count
        assert limiter.status()["status"] == "ok" and limiter.status()["counting_in"] == "redis"
        # Gone again mid-run: the next request falls back at once, without an error.
        proxy.stop()
        assert await _admit(limiter, 1) == [False]  # memory still remembers this process's requests
        assert limiter.status()["status"] == "degraded"

    try:
        asyncio.run(scenario())
    finally:
        proxy.stop()
        for key in shared_redis.scan_iter(f"{namespace}:*"):
            shared_redis.delete(key)


def test_health_names_the_rate_limiter_while_redis_is_down(open_store: Callable[..., RagStore]) -> None:
    store = open_store(redis_url=f"redis://127.0.0.1:{CLOSED_PORT}/0", rate_limit_default="2/hour", redis_timeout_s=0.2)
    with TestClient(_app(store)) as client:
        answers = [client.get("/v1/collections", headers=_key(4)).status_code for _ in range(3)]
        health = client.get("/health").json()
    assert answers == [200, 200, 429]  # no request failed for Redis; the limit held, in memory
    limiter = health["components"]["rate_limiter"]
    assert limiter["status"] == "degraded" and limiter["storage"] == "redis" and limiter["counting_in"] == "memory"
    assert str(CLOSED_PORT) in limiter["error"] or "onnect" in limiter["error"]
    assert health["status"] == "degraded"
