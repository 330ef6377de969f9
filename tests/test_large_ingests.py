"""Large ingests: batched under SQLite's variable limit, queued as a job with progress over HTTP, and database
errors named for what they are (not all "the database is unreachable")."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, text

from ragstore import RagStore
from ragstore.api.app import create_app
from ragstore.config import Settings
from ragstore.errors import InsufficientStorage, MigrationError, PayloadTooLarge
from ragstore.runtime import handlers
from ragstore.schemas import JobProgress

from conftest import CountingEmbedder

OLD_SQLITE_LIMIT = 999  # SQLite before 3.32 (and builds that keep its default)


def _docs(n: int, dim: int, prefix: str = "doc") -> list[dict[str, Any]]:
    """`n` small documents that bring their own vectors: the size under test is the count, not the model."""
    return [
        {
            "source_uri": f"{prefix}-{i}",
            "chunks": [{"text": f"Document {prefix} {i} about backups.", "vector": [1.0] + [i / n] * (dim - 1)}],
        }
        for i in range(n)
    ]


def _limit_variables(store: RagStore, limit: int) -> None:
    """Every new SQLite connection of the store as an SQLite built with `limit` variables per statement."""
    engine = store.documents.catalog.db.engine

    @event.listens_for(engine, "connect")
    def _limit(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, limit)

    engine.dispose()


@pytest.fixture
def sqlite_store(tmp_path: Path, embedder: CountingEmbedder) -> Iterator[RagStore]:
    with RagStore.open(Settings(data_dir=tmp_path / "data"), embedder=embedder) as opened:
        yield opened


def test_an_ingest_past_the_variable_limit_is_stored_in_batches(sqlite_store: RagStore) -> None:
    """Every `IN (...)` of the write path (and the replacement of every source) stays under 999 variables."""
    _limit_variables(sqlite_store, OLD_SQLITE_LIMIT)
    sqlite_store.collections.create("kb")
    dim = sqlite_store.collections.embedder.dimension
    first = sqlite_store.documents.add("kb", _docs(2500, dim))
    assert {o.status for o in first} == {"added"}
    again = sqlite_store.documents.add("kb", _replaced(2500, dim))
    assert {o.status for o in again} == {"replaced"}
    assert sqlite_store.collections.get("kb").document_count == 2500
    report = sqlite_store.consistency.check("kb")
    assert report is not None and report.problems == 0, report


def _replaced(n: int, dim: int) -> list[dict[str, Any]]:
    return [
        {"source_uri": f"doc-{i}", "chunks": [{"text": f"New version {i}.", "vector": [0.5] + [i / n] * (dim - 1)}]}
        for i in range(n)
    ]


def test_sqlite_errors_are_named_for_what_they_are(sqlite_store: RagStore) -> None:
    db = sqlite_store.documents.catalog.db
    _limit_variables(sqlite_store, OLD_SQLITE_LIMIT)
    params = {f"p{i}": i for i in range(OLD_SQLITE_LIMIT + 1)}
    too_many = text(f"SELECT 1 WHERE 1 IN ({', '.join(':' + k for k in params)})")
    with pytest.raises(PayloadTooLarge, match="too large for one database statement"):
        db.fetch(too_many, params)
    with pytest.raises(MigrationError, match="migrate upgrade"), db.read() as s:
        s.execute(text("SELECT * FROM no_such_table"))
    with pytest.raises(MigrationError):
        db.write(lambda s: s.execute(text("INSERT INTO no_such_table VALUES (1)")))


def test_a_full_disk_is_507_not_unreachable(sqlite_store: RagStore) -> None:
    """SQLite's SQLITE_FULL, made real by capping the file's page count: InsufficientStorage (HTTP 507)."""
    db = sqlite_store.documents.catalog.db
    with db.engine.connect() as conn:
        pages = int(conn.exec_driver_sql("PRAGMA page_count").scalar_one())

    @event.listens_for(db.engine, "connect")
    def _cap(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.execute(f"PRAGMA max_page_count = {pages + 2}")

    db.engine.dispose()
    sqlite_store.collections.create("kb")
    with pytest.raises(InsufficientStorage) as caught:
        db.write(lambda s: s.execute(text("CREATE TABLE filler AS SELECT randomblob(2000000) AS x")))
    assert caught.value.http_status == 507 and "disk is full" in caught.value.message


def test_the_progress_of_an_ingest_job_is_reported_per_batch(store: RagStore, monkeypatch: pytest.MonkeyPatch) -> None:
    store.collections.create("kb")
    monkeypatch.setattr(handlers, "INGEST_JOB_BATCH", 5)
    seen: list[tuple[int, int, JobProgress | None]] = []
    docs = _docs(12, store.collections.embedder.dimension)
    result = handlers.ingest_documents(
        store, {"collection": "kb", "documents": docs}, lambda d, t, detail=None: seen.append((d, t, detail))
    )
    # Every batch's end is reported (reports between them are throttled to one a second).
    assert sorted({(d, t) for d, t, _ in seen}) == [(0, 12), (5, 12), (10, 12), (12, 12)]
    last = seen[-1][2]
    assert last is not None and (last.chunks_stored, last.chunks_total, last.outcomes.added) == (12, 12, 12)
    assert (result["done"], result["total"], result["added"]) == (12, 12, 12)


@pytest.fixture
def job_client(make_settings: Callable[..., Settings], embedder: CountingEmbedder) -> Iterator[TestClient]:
    settings = make_settings(ingest_job_documents=10)
    with RagStore.open(settings, embedder=embedder) as opened, TestClient(create_app(store=opened)) as client:
        client.post("/v1/collections", json={"name": "kb"})
        yield client


def _finished(client: TestClient, url: str, timeout_s: float = 120.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        job = client.get(url)
        assert job.status_code == 200, job.text
        if job.json()["state"] in ("done", "dead") or time.monotonic() > deadline:
            return dict(job.json())
        time.sleep(0.2)


def test_a_large_request_becomes_a_job_with_progress(job_client: TestClient) -> None:
    small = job_client.post("/v1/collections/kb/documents", json=[{"text": "One small document about backups."}])
    assert small.status_code == 201
    docs = [{"text": f"Document {i} of a large request about restores.", "source_uri": f"big-{i}"} for i in range(25)]
    accepted = job_client.post("/v1/collections/kb/documents", json=docs)
    assert accepted.status_code == 202, accepted.text
    body = accepted.json()
    assert body["documents"] == 25 and accepted.headers["location"] == body["status_url"]
    job = _finished(job_client, body["status_url"])
    assert job["state"] == "done", job
    assert (job["result"]["done"], job["result"]["total"], job["result"]["added"]) == (25, 25, 25)
    progress = job["progress"]
    assert (progress["state"], progress["documents_done"], progress["chunks_stored"]) == ("done", 25, 25)
    assert len(job_client.get("/v1/collections/kb/documents", params={"limit": 100}).json()) == 26
    assert job_client.get(f"/v1/jobs/{2**63 - 1}").status_code == 404
    assert job_client.get(f"/v1/jobs/{2**64}").status_code == 422


def test_a_large_jsonl_upload_becomes_a_job(job_client: TestClient) -> None:
    lines = "\n".join(f'{{"text": "Line {i} about indexes."}}' for i in range(15)).encode()
    accepted = job_client.post(
        "/v1/collections/kb/documents",
        files={"file": ("many.jsonl", lines, "application/x-ndjson")},
        headers={"x-requested-with": "ragstore-tests"},
    )
    assert accepted.status_code == 202, accepted.text
    job = _finished(job_client, accepted.json()["status_url"])
    assert job["state"] == "done" and job["result"]["added"] == 15, job
    bad = job_client.post(
        "/v1/collections/kb/documents",
        files={"file": ("bad.jsonl", b'{"text": "fine"}\n' * 11 + b'{"text": "\\ud800"}\n', "application/x-ndjson")},
        headers={"x-requested-with": "ragstore-tests"},
    )
    assert bad.status_code == 422 and "text" in bad.json()["error"]["message"]
