"""Several server processes over one PostgreSQL database, with and without Redis, and the faults of
their shared servers: Redis stopped mid-run, PostgreSQL restarted mid-run.

The servers are real `ragstore serve` processes on loopback; Redis and the restarted PostgreSQL are
private servers of the test's own (tests/servers.py), so stopping them disturbs nothing else.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from sqlalchemy import text

from ragstore.config import Settings
from ragstore.errors import RagstoreError
from ragstore.service import RagStore
from servers import PrivatePostgres, PrivateRedis, free_port

from conftest import service_missing

RAGSTORE = Path(sys.executable).parent / "ragstore"
DIM = 16
on_postgres = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path)
    try:
        server.start()
    except Exception as exc:
        service_missing(f"a private redis-server cannot run here: {exc}")
    yield server
    server.stop()


@contextmanager
def server_process(settings: Settings, log: Path, *args: str, **env: str) -> Iterator[httpx.Client]:
    port = free_port()
    full = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    # Not a test of rate limits (test_rate_limits.py): these servers take many requests from one address.
    full.update(RAGSTORE_RATE_LIMIT_ANONYMOUS="1000000/minute", RAGSTORE_RATE_LIMIT_DEFAULT="1000000/minute")
    # Authorization is not the subject here (tests/test_authorization.py and the live server's are): the
    # servers bind to loopback, where RAGSTORE_AUTH=off is allowed.
    full.update(RAGSTORE_DATA_DIR=str(settings.data_dir), RAGSTORE_SYNC_POLL_INTERVAL_S="0.2", RAGSTORE_AUTH="off")
    full.update(env)
    if settings.database_url:
        full["DATABASE_URL"] = settings.database_url
    with log.open("wb") as out:
        proc = subprocess.Popen([str(RAGSTORE), "serve", "--port", str(port), *args], stderr=out, stdout=out, env=full)
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, log.read_text()[-3000:]
            try:
                if client.get("/health").status_code in (200, 503):
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.1)
        yield client
    finally:
        client.close()
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()


def replica_owners(client: httpx.Client, processes: int = 2) -> set[str]:
    """The index replicas' owners that /health names over up to 200 new connections (the kernel hands each to
    any of the server's processes), until `processes` are seen."""
    owners: set[str] = set()
    for _ in range(200):
        with httpx.Client(base_url=client.base_url, timeout=30) as fresh:
            owners.add(fresh.get("/health").json()["components"]["vector_index"]["replica"]["owner"])
        if len(owners) == processes:
            break
    return owners


def add(client: httpx.Client, text: str, vector: list[float]) -> int:
    response = client.post(
        "/v1/collections/kb/documents", json={"text": text, "chunks": [{"text": text, "vector": vector}]}
    )
    assert response.status_code == 201, response.text
    return int(response.json()["documents"][0]["document_id"])


def top(client: httpx.Client, vector: list[float]) -> dict[str, Any]:
    response = client.post("/v1/collections/kb/search", json={"vector": vector, "k": 1})
    assert response.status_code == 200, response.text
    return dict(response.json())


@on_postgres
@pytest.mark.parametrize("with_redis", [False, True], ids=["sql-only", "redis"])
@pytest.mark.timeout(240)
def test_two_server_processes_see_each_others_writes_at_once(
    settings: Settings, tmp_path: Path, with_redis: bool, request: pytest.FixtureRequest
) -> None:
    env = {"REDIS_URL": request.getfixturevalue("private_redis").url} if with_redis else {}
    rng = np.random.default_rng(7)
    with (
        server_process(settings, tmp_path / "a.log", **env) as a,
        server_process(settings, tmp_path / "b.log", **env) as b,
    ):
        assert (
            a.post("/v1/collections", json={"name": "kb", "embedding_model": "synthetic", "dimension": DIM}).status_code
            == 201
        )
        replicas = {
            a.get("/health").json()["components"]["vector_index"]["replica"]["owner"],
            b.get("/health").json()["components"]["vector_index"]["replica"]["owner"],
        }
        assert len(replicas) == 2
        for i in range(15):
            writer, reader = (a, b) if i % 2 == 0 else (b, a)
            vector = rng.normal(size=DIM).tolist()
            doc_id = add(writer, f"doc {i}", vector)
            first = top(reader, vector)  # the other process, at once: no sleep, no poll interval
            assert first["hits"][0]["document_id"] == doc_id
            assert top(reader, vector)["cached"] is True  # the same request again: the result cache
        # A delete through one process removes the document from the other's results (and cached results).
        assert b.delete(f"/v1/collections/kb/documents/{doc_id}").status_code == 204
        after = top(a, vector)
        assert after["hits"][0]["document_id"] != doc_id and after["cached"] is False
        if with_redis:
            health = b.get("/health").json()["components"]
            assert health["cache"]["backend"] == "memory+redis" and health["events"]["subscribed"] is True


@on_postgres
@pytest.mark.timeout(180)
def test_serve_workers_2_runs_two_processes_that_agree(settings: Settings, tmp_path: Path) -> None:
    with server_process(settings, tmp_path / "serve.log", "--workers", "2") as client:
        owners = replica_owners(client)
        assert len(owners) == 2, owners
        made = client.post("/v1/collections", json={"name": "kb", "embedding_model": "synthetic", "dimension": DIM})
        assert made.status_code == 201
        vector = np.random.default_rng(1).normal(size=DIM).tolist()
        doc_id = add(client, "only", vector)
        for _ in range(20):
            with httpx.Client(base_url=client.base_url, timeout=30) as fresh:
                assert top(fresh, vector)["hits"][0]["document_id"] == doc_id


# Loaded at the start of every Python process of the server (sitecustomize): each worker's warm-up first
# holds the GIL for the given seconds, as kiwi's model load does (libc's sleep through ctypes.PyDLL, which
# keeps the GIL, unlike time.sleep).
GIL_HOLDING_WARM_UP = """
import ctypes, os
from ragstore.service import RagStore
_warm_up = RagStore.warm_up
def _held(self):
    ctypes.PyDLL(None).sleep(int(os.environ["TEST_WARM_UP_HOLDS_GIL_S"]))
    _warm_up(self)
RagStore.warm_up = _held
"""


@on_postgres
@pytest.mark.timeout(180)
def test_a_worker_whose_start_up_holds_the_gil_is_not_killed(settings: Settings, tmp_path: Path) -> None:
    """uvicorn's supervisor kills a worker that does not answer its ping in time (5 s by default). On a busy
    machine, kiwi's model load held the GIL past that, and `serve --workers 2` killed its workers in their
    start-up again and again (a connection reset in CI)."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(GIL_HOLDING_WARM_UP)
    log = tmp_path / "serve.log"
    env = {"PYTHONPATH": str(site), "TEST_WARM_UP_HOLDS_GIL_S": "8"}
    with server_process(settings, log, "--workers", "2", **env) as client:
        owners = replica_owners(client)
        assert len(owners) == 2, owners
    assert "died" not in log.read_text(), log.read_text()[-3000:]


@on_postgres
@pytest.mark.timeout(120)
def test_redis_stopped_mid_run_degrades_and_recovers(
    make_settings: Callable[..., Settings], private_redis: PrivateRedis, embedder: Any
) -> None:
    settings = make_settings(redis_url=private_redis.url, redis_retry_after_s=0.3, redis_timeout_s=0.2)
    with RagStore.open(settings, embedder=embedder) as one, RagStore.open(settings, embedder=embedder) as two:
        assert one.components.bus is not None and two.components.bus is not None
        assert one.components.bus.wait_subscribed() and two.components.bus.wait_subscribed()
        one.collections.create("kb", embedding_model="synthetic", dimension=DIM)
        vector = np.ones(DIM).tolist()
        one.documents.add("kb", [{"text": "a", "chunks": [{"text": "a", "vector": vector}]}])
        assert two.search("kb", vector=vector).cached is False
        assert one.search("kb", vector=vector).cached is True  # shared through Redis: the other process's entry
        assert one.components.cache.search.stats.hits_shared == 1
        received = two.components.bus.received
        one.documents.add("kb", [{"text": "b", "chunks": [{"text": "b", "vector": vector}]}])
        wait_for(lambda: two.components.bus.received > received, "the other process heard of the write")

        private_redis.stop()
        for _ in range(3):  # no error: searches and writes go on with the in-process caches
            assert len(two.search("kb", vector=vector, k=5).hits) == 2
        one.documents.add("kb", [{"text": "c", "chunks": [{"text": "c", "vector": vector}]}])
        assert len(two.search("kb", vector=vector, k=5).hits) == 3  # SQL versions: still no stale result
        health = two.ops.health()
        assert health.status == "degraded"
        assert health.components.cache.status == "degraded"
        assert health.components.cache.redis is not None and "Error" in str(health.components.cache.redis["error"])

        private_redis.start()
        wait_for(lambda: two.components.bus.healthy and one.components.bus.healthy, "the event bus resubscribed")
        two.search("kb", vector=vector, k=7)
        wait_for(lambda: two.ops.health().components.cache.status == "ok", "the cache recovered")
        assert one.search("kb", vector=vector, k=7).cached is True


@on_postgres
@pytest.mark.timeout(180)
def test_postgres_restarted_mid_run_loses_no_acknowledged_write(
    make_settings: Callable[..., Settings], tmp_path: Path, embedder: Any
) -> None:
    try:
        server = PrivatePostgres()
    except Exception as exc:
        service_missing(f"a private PostgreSQL cluster cannot run here: {exc}")
        return
    try:
        server.start()
        settings = make_settings(database_url=server.url, database_connect_timeout_s=2)
        acknowledged: list[int] = []
        refused: list[str] = []
        stop = threading.Event()
        with RagStore.open(settings, embedder=embedder) as store:
            store.collections.create("kb", embedding_model="synthetic", dimension=DIM)

            def write_forever() -> None:
                rng = np.random.default_rng(3)
                n = 0
                while not stop.is_set():
                    text = f"write {n}"
                    try:
                        out = store.documents.add(
                            "kb", [{"text": text, "chunks": [{"text": text, "vector": rng.normal(size=DIM).tolist()}]}]
                        )
                        acknowledged.append(int(out[0].document_id or 0))
                    except RagstoreError as exc:
                        refused.append(exc.message)
                        time.sleep(0.05)
                    n += 1

            def started_at() -> str:
                with store.db.read() as s:
                    return str(s.scalar(text("SELECT pg_postmaster_start_time()")))

            first_start = started_at()
            writer = threading.Thread(target=write_forever)
            writer.start()
            wait_for(lambda: len(acknowledged) >= 20, "writes before the restart")
            server.restart()
            before = len(acknowledged)
            wait_for(lambda: len(acknowledged) >= before + 20, "writes after the restart", timeout_s=60)
            stop.set()
            writer.join(30)
            assert started_at() != first_start, "the server did not restart"
            # Writes that lost their connection before COMMIT were retried; any refused one says why.
            assert all("database" in message.lower() for message in refused), refused[:3]
            stored = {d.id for d in store.documents.list("kb", limit=10_000)}
            assert set(acknowledged) <= stored
            assert len(store.search("kb", vector=np.ones(DIM).tolist(), k=1000).hits) == len(stored)
    finally:
        server.stop()


def wait_for(condition: Callable[[], bool], what: str, timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.05)
