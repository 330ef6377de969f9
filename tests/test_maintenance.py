"""`ragstore maintenance optimize|cleanup` (issue #20): what each step does on SQLite and PostgreSQL, the dry
run that changes nothing, the run ledger and the audit record, the schedules."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from ragstore.cli import app
from ragstore.clock import ManualClock
from ragstore.config import Settings
from ragstore.db.health_models import MaintenanceRun, SystemHealth
from ragstore.db.models import Embedding, Job
from ragstore.db.security_models import AuditLog
from ragstore.runtime.maintenance import run_maintenance
from ragstore.runtime.scheduler import MAINTENANCE_JOBS, MaintenanceScheduler, run_scheduled_maintenance
from ragstore.service import RagStore
from ragstore.vectors.embedded import EmbeddedVectorIndex


def count(store: RagStore, model: Any, *where: Any) -> int:
    with store.db.read() as s:
        return int(s.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def test_cleanup_counts_in_a_dry_run_then_removes(make_settings: Callable[..., Settings], embedder: Any) -> None:
    clock = ManualClock()
    with RagStore.open(make_settings(companion_model="none"), embedder=embedder, clock=clock) as store:
        assert store.ops.snapshot() is not None
        old = clock.now() - timedelta(days=40)

        def dead_job(s: Any) -> None:
            s.add(Job(kind="ingest_documents", state="dead", created_at=old, updated_at=old, run_after=old))
            s.add(Job(kind="ingest_documents", state="dead"))  # recent: kept for a person to read

        store.db.write(dead_job)
        clock.advance(15 * 86400)  # the snapshot is now past the 14 days of health retention
        dry = run_maintenance(store, "cleanup", dry_run=True)
        assert dry is not None and dry.dry_run
        steps = {s.name: s.count for s in dry.steps}
        assert steps["health_rows"] == 1 and steps["dead_jobs"] == 1
        assert count(store, SystemHealth) == 1 and count(store, Job) == 2  # nothing changed
        done = run_maintenance(store, "cleanup")
        assert done is not None
        steps = {s.name: s.count for s in done.steps}
        assert steps["health_rows"] == 1 and steps["dead_jobs"] == 1
        assert count(store, SystemHealth) == 0 and count(store, Job) == 1
        runs = count(store, MaintenanceRun, MaintenanceRun.action == "cleanup", MaintenanceRun.state == "complete")
        assert runs == 2
        assert count(store, AuditLog, AuditLog.action == "maintenance.cleanup") == 2


def test_optimize_runs_each_step_of_the_dialect(store: RagStore) -> None:
    store.collections.create("kb", embedding_model="synthetic", dimension=4)
    store.documents.add("kb", [{"text": "x", "chunks": [{"text": "x", "vector": [1.0, 0, 0, 0]}]}])
    dry = run_maintenance(store, "optimize", dry_run=True)
    done = run_maintenance(store, "optimize")
    assert dry is not None and done is not None
    names = [s.name for s in done.steps]
    assert names == [s.name for s in dry.steps]
    steps = {s.name: s for s in done.steps}
    if store.db.is_sqlite:
        assert names[:5] == ["analyze", "optimize", "fts_optimize", "incremental_vacuum", "wal_checkpoint"]
        assert steps["fts_optimize"].count == 2  # the chunks' and the messages' full-text indexes
    else:
        assert names[:2] == ["vacuum_analyze", "reindex"]
        assert steps["vacuum_analyze"].count and steps["vacuum_analyze"].count >= 30
    with store.db.read() as s:
        details = s.scalar(select(MaintenanceRun.details).where(MaintenanceRun.id == done.run_id))
    assert [d["name"] for d in details["steps"]] == names
    assert count(store, AuditLog, AuditLog.action == "maintenance.optimize") == 2


def test_cleanup_removes_unused_embeddings_and_an_ingest_reusing_one_embeds_it_again(store: RagStore) -> None:
    """The race the removal must survive: an ingest decides to reuse a stored embedding, a cleanup removes it
    (no chunk held it), then the ingest's transaction runs. It finds it gone and embeds the text again."""
    store.collections.create("kb")
    text = "The backup is verified by restoring it beside the live store."
    first = store.documents.add_text("kb", text, title="a", source_uri="a")
    store.index.wait()
    assert first.document_id is not None
    store.documents.delete("kb", first.document_id)
    store.index.wait()
    assert count(store, Embedding, Embedding.model == store.components.embedder.model) == 1  # held by no chunk now
    ingestor = store.components.ingestor
    original = ingestor._vectors_to_store
    calls: list[int] = []

    def look_up_then_clean(*args: Any, **kwargs: Any) -> Any:
        found = original(*args, **kwargs)
        calls.append(len(found))
        if len(calls) == 1:  # the embedding counted as stored: the cleanup removes it before the write
            done = run_maintenance(store, "cleanup")
            assert done is not None
            assert {s.name: s.count for s in done.steps}["orphan_embeddings"] == 1
        return found

    ingestor._vectors_to_store = look_up_then_clean  # type: ignore[method-assign]
    try:
        second = store.documents.add_text("kb", text, title="b", source_uri="b")
    finally:
        del ingestor._vectors_to_store
    assert second.status == "added" and calls == [0, 1]  # reused, then embedded again after the removal
    store.index.wait()
    assert count(store, Embedding, Embedding.model == store.components.embedder.model) == 1
    assert store.consistency.check(trigger="api").problems == 0
    hits = store.search("kb", "verified by restoring", k=1, mode="dense").hits
    assert hits and hits[0].document_id == second.document_id
    dry = run_maintenance(store, "cleanup", dry_run=True)
    assert dry is not None and {s.name: s.count for s in dry.steps}["orphan_embeddings"] == 0


@pytest.mark.parametrize("database_url", [None], ids=["sqlite"])  # the index is the same on either database
def test_optimize_compacts_an_embedded_index_that_deletes_left_holes(store: RagStore) -> None:
    rng = np.random.default_rng(3)
    store.collections.create("kb", embedding_model="synthetic", dimension=8)
    vectors = rng.normal(size=(200, 8))
    added = store.documents.add(
        "kb", [{"text": f"d{i}", "chunks": [{"text": f"d{i}", "vector": v.tolist()}]} for i, v in enumerate(vectors)]
    )
    store.index.wait()
    for outcome in added[:120]:  # a pruned corpus: more deletes than adds after them
        assert outcome.document_id is not None
        store.documents.delete("kb", outcome.document_id)
    store.index.wait()
    index = store.components.vectors
    assert isinstance(index, EmbeddedVectorIndex)
    cid = store.components.catalog.resolve("kb").id
    graph = index._subs[cid].index
    assert (int(graph.stats.nodes), len(graph)) == (200, 80)
    before = store.search("kb", vector=vectors[150].tolist(), k=5, mode="dense")

    dry = run_maintenance(store, "optimize", dry_run=True)
    assert dry is not None
    step = next(s for s in dry.steps if s.name == "vector_index")
    assert step.count == 1 and "would rebuild 1 collections, dropping 120 removed slots" in step.note
    assert int(index._subs[cid].index.stats.nodes) == 200  # a dry run changes nothing

    done = run_maintenance(store, "optimize")
    assert done is not None
    step = next(s for s in done.steps if s.name == "vector_index")
    assert step.count == 1 and step.note.startswith("rebuilt 1 collections")
    graph = index._subs[cid].index
    assert (int(graph.stats.nodes), len(graph)) == (80, 80)
    after = store.search("kb", vector=vectors[150].tolist(), k=5, mode="dense")
    assert [h.chunk_id for h in after.hits] == [h.chunk_id for h in before.hits]
    again = run_maintenance(store, "optimize")
    assert again is not None
    assert next(s for s in again.steps if s.name == "vector_index").count == 0  # nothing left to compact
    assert store.consistency.check(trigger="api").problems == 0


def test_the_cli_and_the_schedules(
    store: RagStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, database_url: str | None
) -> None:
    monkeypatch.setenv("RAGSTORE_DATA_DIR", str(store.settings.data_dir))
    if database_url is not None:
        monkeypatch.setenv("DATABASE_URL", store.settings.database_url or "")
    shown = CliRunner().invoke(app, ["maintenance", "cleanup", "--dry-run", "--json"])
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.output)["dry_run"] is True
    table = CliRunner().invoke(app, ["maintenance", "optimize"])
    assert table.exit_code == 0 and "maintenance optimize" in table.output
    scheduler = MaintenanceScheduler(
        store, check_schedule="", check_repair=False, maintenance_schedules={"cleanup": "17 2 * * *", "optimize": ""}
    )
    assert MAINTENANCE_JOBS["cleanup"] in scheduler.jobs and MAINTENANCE_JOBS["optimize"] not in scheduler.jobs
    assert run_scheduled_maintenance(store, "cleanup") is not None
    # One slot, taken twice (two processes' schedules firing at once): it runs once.
    assert run_maintenance(store, "cleanup", trigger="schedule", slot="cleanup:2026-12-06T02:17") is not None
    assert run_maintenance(store, "cleanup", trigger="schedule", slot="cleanup:2026-12-06T02:17") is None
