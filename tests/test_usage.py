"""Usage accounting: a row per request with the route template, the caller, bytes, latency and the embedding
calls and tokens the request caused (cached searches too); the buffered writer never blocks; summaries by
day, key and route from the API and the CLI; retention by whole partitions on PostgreSQL, in batches on SQLite."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from numpy.typing import NDArray
from sqlalchemy import func, select, text
from typer.testing import CliRunner

from limits_helpers import PrincipalFromHeader, principal_header
from ragstore.api.app import create_app
from ragstore.cli import app as cli_app
from ragstore.clock import ManualClock
from ragstore.config import Settings
from ragstore.db.security_models import ApiKey, ApiUsageLog, AuditLog
from ragstore.embeddings.accounting import charge, tallying
from ragstore.embeddings.base import EmbedKind, UsageRecord
from ragstore.embeddings.batching import QueryBatcher
from ragstore.embeddings.fake_openai import FakeOpenAI
from ragstore.runtime.scheduler import run_usage_maintenance
from ragstore.security.usage import UsageWriter
from ragstore.security.usage_retention import maintain_usage_table, next_month
from ragstore.service import RagStore

OPENAI_KEY = "sk-usage-test"


@pytest.fixture
def openai() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(api_key=OPENAI_KEY) as fake:
        yield fake


@pytest.fixture
def metered(make_settings: Callable[..., Settings], openai: FakeOpenAI) -> Iterator[RagStore]:
    """A store whose embedder is built by the store itself (so its usage is reported), over the fake OpenAI."""
    settings = make_settings(
        auth="required",
        embedding_backend="openai",
        openai_api_key=OPENAI_KEY,
        openai_base_url=openai.url,
        rate_limit_default="1000/minute",
    )
    with RagStore.open(settings, clock=ManualClock()) as store:
        yield store


def _rows(store: RagStore) -> list[ApiUsageLog]:
    store.usage.flush()
    with store.db.read() as s:
        return list(s.scalars(select(ApiUsageLog).order_by(ApiUsageLog.id)))


def test_every_request_is_logged_with_its_route_template_caller_and_cost(metered: RagStore) -> None:
    app = create_app(store=metered)
    app.add_middleware(PrincipalFromHeader)
    key = principal_header("key", 77, "admin")  # creating a collection is an admin's
    with TestClient(app) as client:
        assert client.post("/v1/collections", json={"name": "kb"}, headers=key).status_code == 201
        added = client.post("/v1/collections/kb/documents", json={"text": "마라톤 훈련은 주 3회 달린다."}, headers=key)
        assert added.status_code == 201
        body = {"query": "마라톤 훈련", "k": 3}
        first = client.post("/v1/collections/kb/search", json=body, headers=key)
        cached = client.post("/v1/collections/kb/search", json=body, headers=key)
        assert first.status_code == cached.status_code == 200
        assert client.get("/no/such/route/secret-token", headers=key).status_code == 404
        assert client.get("/v1/collections/kb", headers=principal_header("user", 5, "read")).status_code == 200
    rows = _rows(metered)
    assert len(rows) == 6
    create, ingest, search, again, missing, by_user = rows
    assert (create.method, create.route, create.status, create.collection) == ("POST", "/v1/collections", 201, None)
    assert ingest.route == "/v1/collections/{name}/documents" and ingest.collection == "kb"
    assert ingest.embedding_calls >= 1 and ingest.embedding_tokens > 0
    assert search.route == again.route == "/v1/collections/{name}/search"
    assert search.collection == again.collection == "kb"
    assert search.embedding_calls == 1 and search.embedding_tokens > 0  # the query, through the batcher
    assert again.embedding_calls == 0 and again.embedding_tokens == 0  # answered from the cache, still logged
    assert missing.route == "(unmatched)" and missing.status == 404  # never the raw path
    assert all(r.api_key_id == 77 and r.user_id is None for r in rows[:5])
    assert by_user.api_key_id is None and by_user.user_id == 5 and by_user.route == "/v1/collections/{name}"
    for row in rows:
        assert row.latency_ms > 0 and row.response_bytes > 0 and row.client_address == "testclient"
    assert search.request_bytes > 0 and create.request_bytes > 0
    assert cached.headers["content-length"] == str(again.response_bytes)
    assert rows[0].created_at is not None


def test_a_refused_request_is_logged_as_429_with_its_route(
    make_settings: Callable[..., Settings], embedder: Any
) -> None:
    settings = make_settings(auth="required", rate_limit_default="1/hour")
    with RagStore.open(settings, embedder=embedder) as store:
        app = create_app(store=store)
        app.add_middleware(PrincipalFromHeader)
        with TestClient(app) as client:
            for _ in range(2):
                client.get("/v1/collections/kb/documents", headers=principal_header("key", 3))
        rows = _rows(store)
    assert [r.status for r in rows] == [404, 429]
    assert rows[1].route == "/v1/collections/{name}/documents" and rows[1].collection == "kb"


def test_the_writer_never_blocks_a_full_queue_drops_and_counts(store: RagStore) -> None:
    writer = UsageWriter(store.db, capacity=3, batch_rows=2, background=False)
    row = {
        "created_at": datetime.now(UTC),
        "api_key_id": 1,
        "user_id": None,
        "method": "GET",
        "route": "/health",
        "collection": None,
        "status": 200,
        "latency_ms": 1.0,
        "request_bytes": 0,
        "response_bytes": 10,
        "embedding_calls": 0,
        "embedding_tokens": 0,
        "client_address": "127.0.0.1",
    }
    for _ in range(5):
        writer.record(row)
    assert writer.queued == 3 and writer.dropped == 2
    assert writer.flush() == 3 and writer.written == 3  # two INSERTs of at most two rows
    writer.close()
    assert writer.health().dropped == 2
    with store.db.read() as s:
        assert s.scalar(select(func.count()).select_from(ApiUsageLog)) == 3


def test_the_background_thread_flushes_and_close_writes_the_rest(store: RagStore) -> None:
    writer = UsageWriter(store.db, batch_rows=2, interval_s=3600)  # flushed by count, not by time
    base = {
        "created_at": datetime.now(UTC),
        "method": "GET",
        "route": "/health",
        "status": 200,
        "latency_ms": 1.0,
        "request_bytes": 0,
        "response_bytes": 1,
        "embedding_calls": 0,
        "embedding_tokens": 0,
        "client_address": "",
        "api_key_id": None,
        "user_id": None,
        "collection": None,
    }
    writer.record(base)
    writer.record(base)  # the second row reaches batch_rows: the thread wakes and writes both, long before 1 h
    deadline = time.monotonic() + 30
    while writer.written < 2:
        assert time.monotonic() < deadline, "the writer thread did not flush a full batch"
        time.sleep(0.01)
    writer.record(base)
    writer.close()  # the third is written at close
    assert writer.written == 3 and writer.queued == 0


class _TokenReporter:
    """An embedder that reports usage as OpenAI's does (tokens = characters), to see a batch shared out."""

    backend, model, dimension = "fake", "fake", 4

    def embed(self, texts: Sequence[str], *, kind: EmbedKind) -> NDArray[np.float32]:
        charge(UsageRecord("fake", "fake", len(texts), sum(len(t) for t in texts), 0.0, 1.0))
        return np.ones((len(texts), 4), dtype=np.float32)


def test_a_batched_query_call_is_charged_to_each_request_it_served() -> None:
    import threading

    batcher = QueryBatcher(_TokenReporter())
    tallies: dict[str, Any] = {}
    barrier = threading.Barrier(2)

    def search(text_: str) -> None:
        with tallying() as tally:
            barrier.wait()
            batcher.embed(text_)
            tallies[text_] = tally

    threads = [threading.Thread(target=search, args=(q,)) for q in ("short", "a much longer query")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    batcher.close()
    # One call shared (or two, if the second query missed the batch): each request counts the call once, and
    # the call's tokens are shared out by the length of each query.
    assert {q: (t.calls, t.tokens) for q, t in tallies.items()} == {"short": (1, 5), "a much longer query": (1, 19)}


def test_usage_is_summarised_by_day_key_and_route(metered: RagStore, monkeypatch: pytest.MonkeyPatch) -> None:
    key = ApiKey(key_id="pubid1", secret_hash="0" * 64, name="reporting")
    metered.db.write(lambda s: s.add(key))
    now = metered.clock.now()
    rows = [
        {"api_key_id": key.id, "route": "/v1/collections/{name}/search", "status": 200, "embedding_tokens": 7},
        {"api_key_id": key.id, "route": "/v1/collections/{name}/search", "status": 429, "embedding_tokens": 0},
        {"api_key_id": key.id, "route": "/v1/collections", "status": 200, "embedding_tokens": 0},
        {"api_key_id": None, "route": "/health", "status": 200, "embedding_tokens": 0, "days_ago": 2},
        {"api_key_id": None, "route": "/health", "status": 200, "embedding_tokens": 0, "days_ago": 30},
    ]
    for r in rows:
        metered.usage.record(
            {
                "created_at": now - timedelta(days=r.pop("days_ago", 0)),
                "user_id": None,
                "method": "POST" if "search" in r["route"] else "GET",
                "collection": None,
                "latency_ms": 2.0,
                "request_bytes": 10,
                "response_bytes": 100,
                "embedding_calls": 1 if r["embedding_tokens"] else 0,
                "client_address": "",
                **r,
            }
        )
    metered.usage.flush()
    summary = metered.usage.summary(days=7)
    assert summary.totals.requests == 4 and summary.totals.rate_limited == 1 and summary.totals.errors == 1
    assert summary.totals.embedding_tokens == 7
    search = next(r for r in summary.rows if r.route == "/v1/collections/{name}/search")
    assert (search.requests, search.rate_limited, search.key, search.key_name) == (2, 1, "pubid1", "reporting")
    assert search.day == now.date()
    assert {r.day for r in summary.rows} == {now.date(), (now - timedelta(days=2)).date()}
    by_key = metered.usage.summary(key="pubid1", days=7)
    assert by_key.totals.requests == 3 and by_key.api_key_id == key.id
    assert metered.usage.summary(key=str(key.id)).totals.requests == 3
    assert metered.usage.summary(days=60).totals.requests == 5
    limited = metered.usage.summary(days=60, limit=1)
    assert len(limited.rows) == 1 and limited.truncated

    # Over HTTP: admin only (the local operator when auth is off).
    app = create_app(store=metered)
    app.add_middleware(PrincipalFromHeader)
    with TestClient(app) as client:
        answer = client.get("/v1/usage?days=7&key=pubid1", headers=principal_header("key", 1, "admin"))
        assert answer.status_code == 200 and answer.json()["totals"]["requests"] == 3
        assert client.get("/v1/usage", headers=principal_header("key", 2, "read")).status_code == 403
        assert client.get("/v1/usage").status_code == 401
        assert client.get("/v1/usage?key=nosuchkey", headers=principal_header("key", 1, "admin")).status_code == 404
        assert client.get("/v1/usage?days=0", headers=principal_header("key", 1, "admin")).status_code == 422

    # And from the CLI, over the same store (closed first: the CLI opens its own).
    settings = metered.settings
    metered.close()
    monkeypatch.setenv("RAGSTORE_DATA_DIR", str(settings.data_dir))
    if settings.database_url:
        monkeypatch.setenv("DATABASE_URL", settings.database_url)
    runner = CliRunner()
    result = runner.invoke(cli_app, ["usage", "--key", "pubid1", "--days", "400", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["totals"]["requests"] >= 3
    table = runner.invoke(cli_app, ["usage", "--days", "400"], env={"COLUMNS": "250"})
    assert table.exit_code == 0 and "POST /v1/collections/{name}/search" in table.output, table.output
    unknown = runner.invoke(cli_app, ["usage", "--key", "nosuchkey"])
    assert unknown.exit_code == 2 and "nosuchkey" in unknown.output


def _old_row(store: RagStore, when: datetime) -> dict[str, Any]:
    return {
        "created_at": when,
        "api_key_id": None,
        "user_id": None,
        "method": "GET",
        "route": "/health",
        "collection": None,
        "status": 200,
        "latency_ms": 1.0,
        "request_bytes": 0,
        "response_bytes": 1,
        "embedding_calls": 0,
        "embedding_tokens": 0,
        "client_address": "",
    }


def test_retention_makes_partitions_ahead_and_removes_old_usage(
    make_settings: Callable[..., Settings], embedder: Any
) -> None:
    clock = ManualClock()
    settings = make_settings(usage_retain_days=30)
    with RagStore.open(settings, embedder=embedder, clock=clock) as store:
        start = clock.now()
        for days in (0, 1, 2, 3, 4):
            store.usage.record(_old_row(store, start - timedelta(days=days)))
        store.usage.flush()
        assert run_usage_maintenance(store) is not None  # nothing old yet
        clock.advance(200 * 86_400)
        later = clock.now()
        store.usage.record(_old_row(store, later))  # today's, kept
        store.usage.flush()
        report = run_usage_maintenance(store)
        assert report is not None
        with store.db.read() as s:
            left = s.scalars(select(ApiUsageLog.created_at)).all()
            audit = s.scalars(select(AuditLog).where(AuditLog.action == "usage.prune")).all()
        assert len(left) == 1
        assert len(audit) == 1 and audit[0].actor.startswith("system")
        if store.db.is_sqlite:
            assert report.rows_deleted == 5 and not report.partitions_dropped
        else:
            month = start.date().replace(day=1)
            assert f"api_usage_logs_{month:%Y%m}" in report.partitions_dropped  # dropped whole
            ahead = later.date().replace(day=1)
            expected = {f"api_usage_logs_{m:%Y%m}" for m in (ahead, next_month(ahead), next_month(next_month(ahead)))}
            assert expected <= set(report.partitions_created) | _partition_names(store)
            assert expected <= _partition_names(store)
            assert f"api_usage_logs_{month:%Y%m}" not in _partition_names(store)
            # Today's row was caught by DEFAULT (no partition existed yet) and moved into its month's.
            with store.db.read() as s:
                home = s.execute(text("SELECT tableoid::regclass::text FROM api_usage_logs")).scalar_one()
            assert home.endswith(f"api_usage_logs_{ahead:%Y%m}")
        again = run_usage_maintenance(store)  # idempotent: nothing more to do
        assert again is not None and not again.partitions_dropped and not again.rows_deleted


def _partition_names(store: RagStore) -> set[str]:
    with store.db.read() as s:
        rows = s.execute(
            text(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                "WHERE i.inhparent = 'api_usage_logs'::regclass"
            )
        )
        return {r[0] for r in rows}


def test_sqlite_retention_deletes_in_batches(make_settings: Callable[..., Settings], embedder: Any) -> None:
    settings = make_settings()
    with RagStore.open(settings, embedder=embedder) as store:
        if not store.db.is_sqlite:
            pytest.skip("PostgreSQL drops partitions (the test above)")
        old = datetime.now(UTC) - timedelta(days=400)
        for i in range(7):
            store.usage.record(_old_row(store, old + timedelta(minutes=i)))
        store.usage.record(_old_row(store, datetime.now(UTC)))
        store.usage.flush()
        statements: list[str] = []

        from sqlalchemy import event

        def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            if statement.startswith("DELETE FROM api_usage_logs"):
                statements.append(statement)

        event.listen(store.db.engine, "before_cursor_execute", seen)
        try:
            report = maintain_usage_table(store.db, now=datetime.now(UTC), retain_days=90, batch=3)
        finally:
            event.remove(store.db.engine, "before_cursor_execute", seen)
        assert report.rows_deleted == 7
        assert len(statements) == 3  # 3 + 3 + 1: each batch its own short transaction
        with store.db.read() as s:
            assert s.scalar(select(func.count()).select_from(ApiUsageLog)) == 1
