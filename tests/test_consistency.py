"""The consistency checker: each of the seven kinds of drift is found (with its stable code), the safe ones
are repaired through the outbox, the unsafe ones only reported, and every run is stored and compared."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select, text, update

from ragstore import RagStore
from ragstore.config import Settings
from ragstore.consistency import Kind
from ragstore.db.models import Document, DocumentChunk, Embedding, OpState, SyncOperation, utcnow
from ragstore.errors import NotFound
from ragstore.schemas import ConsistencyReport
from ragstore.vectors.base import CollectionSpec

from conftest import CountingEmbedder

TEXTS = [
    "전세 계약 전에 등기부등본으로 근저당 여부를 확인하세요.",
    "The refund arrives within seven business days after the return is received.",
    "김치는 배추를 소금에 절인 뒤 양념에 버무려 발효시킨다.",
    "Hold the reset button of the KX-720 router for ten seconds.",
]


@pytest.fixture(params=["embedded", "milvus", "chroma"])
def loaded(
    request: pytest.FixtureRequest, make_settings: Callable[..., Settings], embedder: CountingEmbedder
) -> Iterator[RagStore]:
    """A store of four documents on each vector backend (and, through make_settings, on each database)."""
    with RagStore.open(make_settings(vector_backend=request.param), embedder=embedder) as store:
        store.collections.create("kb")
        store.documents.add("kb", [{"text": t, "title": f"doc{i}", "source_uri": f"d{i}"} for i, t in enumerate(TEXTS)])
        yield store


def chunk_ids(store: RagStore) -> list[int]:
    with store.db.read() as s:
        return sorted(s.scalars(select(DocumentChunk.id)))


def kinds(report: ConsistencyReport) -> dict[str, int]:
    return {k: n for k, n in report.counts.items() if n}


def test_a_clean_store_has_no_problems_and_every_run_is_stored(loaded: RagStore) -> None:
    first = loaded.consistency.check()
    assert first is not None and first.problems == 0 and first.state == "complete"
    assert set(first.counts) == {k.value for k in Kind}
    assert first.collections["kb"].model_dump() == {"sql_indexed": 4, "index_vectors": 4, "documents": 4}
    assert first.previous is None
    second = loaded.consistency.check()
    assert second is not None and second.previous.id == first.id
    assert second.changes == {k.value: 0 for k in Kind}
    assert [r.id for r in loaded.consistency.history()] == [second.id, first.id]
    assert loaded.consistency.report().id == second.id


def test_orphan_missing_and_stale_vectors_are_found_and_repaired(loaded: RagStore) -> None:
    ids = chunk_ids(loaded)
    cid = loaded.components.catalog.resolve("kb").id
    dim = loaded.components.embedder.dimension
    rng = np.random.default_rng(0)
    # orphan: a vector whose chunk never existed; missing: a vector the index lost; stale: another vector
    loaded.components.vectors.upsert(
        cid, np.array([999_999], dtype=np.int64), rng.normal(size=(1, dim)).astype(np.float32)
    )
    loaded.components.vectors.delete(cid, np.array([ids[0]], dtype=np.int64))
    loaded.components.vectors.upsert(
        cid, np.array([ids[1]], dtype=np.int64), rng.normal(size=(1, dim)).astype(np.float32)
    )

    report = loaded.consistency.check()
    assert report is not None
    assert kinds(report) == {"orphan_vectors": 1, "missing_vectors": 1, "stale_vectors": 1}
    by_kind = {f.kind: f for f in report.findings}
    assert by_kind["orphan_vectors"].ids == [999_999] and by_kind["orphan_vectors"].safe is True
    assert by_kind["missing_vectors"].ids == [ids[0]]
    assert by_kind["stale_vectors"].ids == [ids[1]]

    repaired = loaded.consistency.check(repair=True)
    assert repaired is not None
    assert kinds(repaired) == {"orphan_vectors": 1, "missing_vectors": 1, "stale_vectors": 1}  # what was found
    assert sum(repaired.remaining.values()) == 0
    assert repaired.repairs.queued_operations == {"delete": 1, "upsert": 2}
    assert repaired.changes["orphan_vectors"] == 0  # the same as the run before it
    # Through the outbox: the repair operations are rows like any other write, and they are done.
    with loaded.db.read() as s:
        states = set(s.scalars(select(SyncOperation.state)))
    assert states == {OpState.DONE}
    assert loaded.search("kb", "전세 계약 등기부등본", k=1, mode="dense").hits[0].title == "doc0"
    after = loaded.consistency.check()
    assert after is not None and after.problems == 0
    assert after.changes["orphan_vectors"] == -1


def test_an_index_collection_sql_does_not_know_is_an_orphan_and_dropped(loaded: RagStore) -> None:
    loaded.components.vectors.ensure_collection(CollectionSpec(4242, 8))
    loaded.components.vectors.upsert(4242, np.array([1, 2], dtype=np.int64), np.ones((2, 8), dtype=np.float32))
    report = loaded.consistency.check()
    assert report is not None and kinds(report) == {"orphan_vectors": 2}
    assert report.findings[0].reason == "collection"
    repaired = loaded.consistency.check(repair=True)
    assert repaired is not None and sum(repaired.remaining.values()) == 0
    assert 4242 not in loaded.components.vectors.collection_ids()


def test_stuck_and_dead_operations_are_retried(loaded: RagStore) -> None:
    ids = chunk_ids(loaded)
    cid = loaded.components.catalog.resolve("kb").id
    loaded.components.vectors.delete(cid, np.array(ids[:2], dtype=np.int64))

    def unit(s):  # type: ignore[no-untyped-def]
        old = utcnow() - timedelta(hours=2)
        s.add(SyncOperation(collection_id=cid, kind="upsert", chunk_ids=[ids[0]], state=OpState.DEAD, attempts=8))
        s.add(
            SyncOperation(
                collection_id=cid,
                kind="upsert",
                chunk_ids=[ids[1]],
                state=OpState.PENDING,
                created_at=old,
                next_attempt_at=utcnow() + timedelta(days=1),
                lease_owner="elsewhere:1:dead",
                lease_expires_at=old,
            )
        )

    loaded.db.write(unit)
    report = loaded.consistency.check()
    assert report is not None
    assert kinds(report) == {"stuck_operations": 2, "missing_vectors": 2}
    reasons = sorted(f.reason for f in report.findings if f.kind == "stuck_operations")
    assert reasons == ["dead", "overdue"]
    repaired = loaded.consistency.check(repair=True)
    assert repaired is not None and sum(repaired.remaining.values()) == 0
    assert repaired.repairs.requeued_dead == 1 and repaired.repairs.rescheduled_operations == 1
    assert loaded.index.outbox_counts().dead == 0


def test_count_drift_is_recounted(loaded: RagStore) -> None:
    loaded.db.write(lambda s: s.execute(update(Document).where(Document.title == "doc2").values(chunk_count=7)))
    report = loaded.consistency.check(repair=True)
    assert report is not None and kinds(report) == {"count_drift": 1}
    assert sum(report.remaining.values()) == 0 and report.repairs.recounted_documents == 1
    with loaded.db.read() as s:
        assert s.scalar(select(Document.chunk_count).where(Document.title == "doc2")) == 1


def test_dimension_mismatch_is_reported_not_repaired_and_reembed_fixes_it(loaded: RagStore) -> None:
    ids = chunk_ids(loaded)
    with loaded.db.read() as s:
        target = s.scalar(select(DocumentChunk.content_hash).where(DocumentChunk.id == ids[2]))
    loaded.db.write(
        lambda s: s.execute(
            update(Embedding).where(Embedding.content_hash == target).values(dimension=3, vector=b"\0" * 12)
        )
    )
    report = loaded.consistency.check(repair=True)
    assert report is not None and kinds(report) == {"dimension_mismatch": 1}
    finding = report.findings[0]
    assert finding.safe is False and finding.ids == [ids[2]] and "reembed" in finding.remedy
    assert report.remaining["dimension_mismatch"] == 1
    assert report.repairs.left_alone == {"dimension_mismatch": 1}
    assert loaded.index.reembed("kb").model_dump() == {"embedded": 1, "queued": 1}
    clean = loaded.consistency.check()
    assert clean is not None and clean.problems == 0


def test_dangling_chunks_are_reported_with_ids(loaded: RagStore) -> None:
    ids = chunk_ids(loaded)
    if loaded.db.is_sqlite:
        # Only with foreign keys off (a plain sqlite3 connection's default) can a document leave its chunks.
        raw = sqlite3.connect(loaded.settings.sqlalchemy_url.removeprefix("sqlite:///"))
        with raw:
            raw.execute("DELETE FROM documents WHERE title = 'doc3'")
        raw.close()
    else:
        with loaded.db.engine.begin() as conn:
            conn.execute(text("SET session_replication_role = replica"))  # skips foreign-key triggers
            conn.execute(text("DELETE FROM documents WHERE title = 'doc3'"))
            conn.execute(text("SET session_replication_role = origin"))
    report = loaded.consistency.check(repair=True)
    assert report is not None and kinds(report) == {"duplicate_content": 1}
    finding = report.findings[0]
    assert finding.reason == "dangling_chunks" and finding.ids == [ids[3]] and finding.safe is False
    assert report.remaining["duplicate_content"] == 1


def test_a_check_of_an_unknown_collection_is_refused(loaded: RagStore) -> None:
    with pytest.raises(NotFound):
        loaded.consistency.check("nope")
    report = loaded.consistency.check("kb")
    assert report is not None and report.collection == "kb" and report.problems == 0


def test_a_scheduled_slot_runs_once(loaded: RagStore) -> None:
    assert loaded.consistency.check(trigger="schedule", slot="check:2026-12-01T04:30") is not None
    assert loaded.consistency.check(trigger="schedule", slot="check:2026-12-01T04:30") is None


def test_a_failed_check_is_stored_as_failed(loaded: RagStore, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(_collection: object = None) -> None:
        raise RuntimeError("index unreachable")

    monkeypatch.setattr(loaded.components.checker, "check", broken)
    with pytest.raises(RuntimeError):
        loaded.consistency.check()
    assert loaded.consistency.history(1)[0].state == "failed"
    assert "index unreachable" in loaded.consistency.history(1)[0].error


def test_the_check_survives_reopening(settings: Settings, embedder: CountingEmbedder) -> None:
    with RagStore.open(settings, embedder=embedder) as store:
        store.collections.create("kb")
        store.documents.add_text("kb", TEXTS[0], title="a")
        assert store.consistency.check() is not None
    with RagStore.open(settings, embedder=embedder) as store:
        report = store.consistency.check()
        assert report is not None and report.problems == 0 and report.previous is not None


# -- the three faces: API, CLI, schedule --------------------------------------------------------------------
def test_the_admin_api_checks_repairs_and_lists(loaded: RagStore) -> None:
    from fastapi.testclient import TestClient

    from ragstore.api.app import create_app

    ids = chunk_ids(loaded)
    loaded.components.vectors.delete(loaded.components.catalog.resolve("kb").id, np.array([ids[0]], dtype=np.int64))
    with TestClient(create_app(store=loaded)) as client:
        none_yet = client.get("/admin/consistency")
        assert none_yet.status_code == 404 and "no consistency report yet" in none_yet.json()["error"]["message"]
        found = client.post("/admin/consistency", headers={"X-Requested-With": "test"})  # an empty POST
        assert found.status_code == 200 and found.json()["counts"]["missing_vectors"] == 1
        assert found.json()["findings"][0]["ids"] == [ids[0]]
        assert client.get("/admin/consistency", params={"latest": True}).json()["id"] == found.json()["id"]
        assert client.get("/admin/consistency").json()["id"] == found.json()["id"]
        repaired = client.post("/admin/consistency/repair", json={"collection": "kb"})
        assert repaired.status_code == 200 and sum(repaired.json()["remaining"].values()) == 0
        history = client.get("/admin/consistency/history", params={"limit": 5}).json()
        assert [r["id"] for r in history] == [repaired.json()["id"], found.json()["id"]]
        assert client.get(f"/admin/consistency/{found.json()['id']}").json()["counts"]["missing_vectors"] == 1
        assert client.get("/admin/consistency/99999").status_code == 404
        unknown = client.post("/admin/consistency/repair", json={"collection": "nope"})
        assert unknown.status_code == 404 and "nope" in unknown.json()["error"]["message"]
        assert client.post("/admin/consistency/repair", json={"colection": "kb"}).status_code == 422
        assert client.get("/admin/consistency/history", params={"limit": 0}).status_code == 422


@pytest.mark.parametrize("loaded", ["embedded"], indirect=True)  # routing, whatever the backend
def test_reading_reports_never_runs_a_check(loaded: RagStore) -> None:
    from fastapi.testclient import TestClient

    from ragstore.api.app import create_app

    with TestClient(create_app(store=loaded)) as client:
        scoped = client.post("/admin/consistency", json={"collection": "kb"})
        assert scoped.status_code == 200 and scoped.json()["collection"] == "kb"
        for _ in range(3):
            assert client.get("/admin/consistency").json()["id"] == scoped.json()["id"]
        assert [r["id"] for r in client.get("/admin/consistency/history").json()] == [scoped.json()["id"]]
        for old_way in ({"latest": False}, {"collection": "kb"}):  # once made GET run a check
            refused = client.get("/admin/consistency", params=old_way)
            assert refused.status_code == 422 and "POST /admin/consistency" in refused.json()["error"]["message"]
        assert len(client.get("/admin/consistency/history").json()) == 1
        unknown = client.post("/admin/consistency", json={"collection": "nope"})
        assert unknown.status_code == 404 and "nope" in unknown.json()["error"]["message"]
        assert client.post("/admin/consistency", json={"colection": "kb"}).status_code == 422
        assert 'data-post="/admin/consistency"' in client.get("/admin").text  # the admin page's button
        paths = client.get("/openapi.json").json()["paths"]
        documented = {
            (method, path): set(operation["responses"])
            for path, operations in paths.items()
            if path.startswith("/admin/consistency")
            for method, operation in operations.items()
        }
        # Every route: 400 (a Host not allowed), 413 (a body over the limit), 422 and 503 (api/limits.py), 401
        # and 403 (an admin route, api/permissions.py), 429 (the rate limits); a POST also 415 (api/origin.py).
        every = {"200", "400", "401", "403", "413", "422", "429", "503"}
        assert documented == {
            ("get", "/admin/consistency"): every | {"404"},
            ("post", "/admin/consistency"): every | {"404", "415"},
            ("post", "/admin/consistency/repair"): every | {"404", "415"},
            ("get", "/admin/consistency/history"): every,
            ("get", "/admin/consistency/{report_id}"): every | {"404"},
        }
        error_schema = paths["/admin/consistency"]["post"]["responses"]["404"]["content"]["application/json"]
        assert error_schema["schema"]["$ref"].endswith("/ErrorResponse")


def test_the_cli_exits_1_while_problems_remain(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make_settings: Callable[..., Settings]
) -> None:
    from typer.testing import CliRunner

    from ragstore.cli import app

    settings = make_settings()
    monkeypatch.setenv("RAGSTORE_DATA_DIR", str(settings.data_dir))
    if settings.database_url:
        monkeypatch.setenv("DATABASE_URL", settings.database_url)
    monkeypatch.chdir(tmp_path)
    with RagStore.open(settings) as store:
        store.collections.create("kb", embedding_model="given", dimension=4)
        store.documents.add("kb", [{"text": "a b c", "chunks": [{"text": "a b c", "vector": [1, 0, 0, 0]}]}])
        store.components.vectors.upsert(
            store.components.catalog.resolve("kb").id, np.array([777], np.int64), np.ones((1, 4), np.float32)
        )
    runner = CliRunner()
    result = runner.invoke(app, ["check"])
    assert result.exit_code == 1 and "orphan_vectors" in result.output and "777" in result.output
    result = runner.invoke(app, ["check", "--repair", "--json"])
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    assert body["counts"]["orphan_vectors"] == 1 and sum(body["remaining"].values()) == 0
    result = runner.invoke(app, ["check"])
    assert result.exit_code == 0 and "found 0, remaining 0" in result.output
    result = runner.invoke(app, ["check", "--history", "--json"])  # the old spelling of `check list`
    assert result.exit_code == 0 and len(json.loads(result.output)) == 3
    assert runner.invoke(app, ["check", "-c", "nope"]).exit_code == 2
    result = runner.invoke(app, ["check", "run", "--json"])
    assert result.exit_code == 0 and sum(json.loads(result.output)["remaining"].values()) == 0
    result = runner.invoke(app, ["check", "list", "--json"])
    runs = json.loads(result.output)
    assert result.exit_code == 0 and len(runs) == 4 and runs[0]["problems"] == 0 and runs[-1]["problems"] == 1
    result = runner.invoke(app, ["check", "show", str(runs[-1]["id"])])
    assert result.exit_code == 0 and "orphan_vectors" in result.output and "found 1, remaining 1" in result.output
    result = runner.invoke(app, ["check", "show", "--json"])
    assert result.exit_code == 0 and json.loads(result.output)["id"] == runs[0]["id"]
    assert runner.invoke(app, ["check", "show", "999999"]).exit_code == 2
    assert runner.invoke(app, ["check", "run", "-c", "nope"]).exit_code == 2


def test_the_server_schedules_the_daily_check(loaded: RagStore) -> None:
    from ragstore.runtime.scheduler import CHECK_JOB, MaintenanceScheduler, run_scheduled_check

    scheduler = MaintenanceScheduler(loaded, check_schedule="30 4 * * *", check_repair=True)
    scheduler.start()
    try:
        next_run = scheduler.jobs[CHECK_JOB]
        assert next_run is not None and "T04:30:00" in next_run
    finally:
        scheduler.stop()
    assert MaintenanceScheduler(loaded, check_schedule="", check_repair=True).jobs == {}
    due = datetime(2026, 12, 1, 4, 30)
    first = run_scheduled_check(loaded, repair=True, due=due)
    assert first is not None and loaded.consistency.report(first).trigger == "schedule"
    assert run_scheduled_check(loaded, repair=True, due=due) is None  # another process took the slot


def test_a_bad_schedule_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    from ragstore.config import load_settings
    from ragstore.errors import ConfigError

    monkeypatch.setenv("RAGSTORE_CHECK_SCHEDULE", "every day")
    with pytest.raises(ConfigError, match="RAGSTORE_CHECK_SCHEDULE"):
        load_settings()


def test_a_collection_being_dropped_is_not_drift(loaded: RagStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """Between the drop's two phases its chunks are still rows and its vectors already gone: not a finding."""
    store_id = loaded.components.catalog.resolve("kb").id
    monkeypatch.setattr(loaded.components.applier, "apply_pending", lambda **_: None)  # the drop stays in flight
    loaded.collections.delete("kb")
    loaded.components.vectors.drop_collection(store_id)  # the index applied it; phase two has not run yet
    report = loaded.consistency.check()
    assert report is not None and report.problems == 0, report.findings


@pytest.mark.parametrize("loaded", ["embedded"], indirect=True)  # the report's shape, whatever the backend
def test_a_failed_report_leaves_out_what_it_never_reached_and_openapi_documents_reports(
    loaded: RagStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fastapi.testclient import TestClient

    from ragstore.api.app import create_app

    done = loaded.consistency.check()
    assert done is not None and done.previous is None
    body = done.model_dump(mode="json")
    assert body["previous"] is None and body["changes"] is None  # null when there is nothing to compare with
    assert "repairs" not in body and "remaining_findings" not in body  # no repair ran
    assert body["started_at"] == done.started_at.isoformat()  # the text the JSON has always had

    def broken(_collection: object = None) -> None:
        raise RuntimeError("index unreachable")

    monkeypatch.setattr(loaded.components.checker, "check", broken)
    with pytest.raises(RuntimeError):
        loaded.consistency.check()
    failed = loaded.consistency.report(loaded.consistency.history(1)[0].id)
    assert failed.state == "failed" and failed.findings is None
    with TestClient(create_app(store=loaded)) as client:
        sent = client.get(f"/admin/consistency/{failed.id}").json()
        assert sent == failed.model_dump(mode="json")
        assert not {"findings", "remaining", "previous", "changes"} & set(sent)  # absent, not null
        schemas = client.get("/openapi.json").json()["components"]["schemas"]
        assert {"findings", "remaining", "previous", "changes"} <= set(schemas["ConsistencyReport"]["properties"])
        assert "ConsistencyRunSummary" in schemas and "ConsistencyFinding" in schemas
