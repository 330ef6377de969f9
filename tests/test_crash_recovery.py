"""A crash at any instant of the two-phase write is recovered on the next open: nothing lost, no orphan shown."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from ragstore import RagStore
from ragstore.config import Settings
from ragstore.db.models import ChunkStatus, DocumentChunk, OpState, SyncOperation

from conftest import CountingEmbedder

CHILD = Path(__file__).with_name("crash_child.py")


def run_child(settings: Settings, scenario: str) -> list[str]:
    """Run the crash child against the same data directory and database as `settings`."""
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    if settings.database_url:
        env["DATABASE_URL"] = settings.database_url
    proc = subprocess.run(
        [sys.executable, str(CHILD), str(settings.data_dir), scenario],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    return proc.stdout.split("\n")


def assert_consistent(store: RagStore) -> None:
    """SQL and the index agree: every indexed chunk has a vector, every vector has an indexed chunk."""
    with store.db.read() as s:
        chunks = list(s.scalars(select(DocumentChunk)))
        open_ops = list(s.scalars(select(SyncOperation).where(SyncOperation.state != OpState.DONE)))
    assert open_ops == []
    assert all(c.status == ChunkStatus.INDEXED for c in chunks)
    for cid in {c.collection_id for c in chunks}:
        in_index = {int(i) for batch in store.components.vectors.iter_ids(cid) for i in batch}
        assert in_index == {c.id for c in chunks if c.collection_id == cid}


@pytest.mark.parametrize(
    "scenario", ["after_first_txn", "after_index_before_second_txn", "after_second_txn_before_persist"]
)
def test_crash_during_ingest_is_recovered(settings: Settings, scenario: str, embedder: CountingEmbedder) -> None:
    lines = run_child(settings, scenario)
    assert any(line.startswith("first ") for line in lines)
    with RagStore.open(settings, embedder=embedder) as store:
        titles = {d.title for d in store.documents.list("kb")}
        assert titles == {"first", "second"}  # the second ingest's first transaction had committed
        assert store.search("kb", "how do plants make glucose", k=1).hits[0].title == "second"
        assert store.search("kb", "김치 만드는 법", k=1).hits[0].title == "first"
        assert_consistent(store)
        result = store.search("kb", "anything at all", k=10)
        assert result.dropped == 0
        recovered = store.recovery
        assert recovered.applied_pending + recovered.replayed_operations + len(recovered.rebuilt_collections) > 0


def test_crash_during_delete_is_recovered(settings: Settings, embedder: CountingEmbedder) -> None:
    with RagStore.open(settings, embedder=embedder) as store:
        store.collections.create("kb")
        store.documents.add_text("kb", "김치는 발효 음식이다. 배추와 고춧가루로 만든다.", title="gone")
    run_child(settings, "delete_after_first_txn")
    with RagStore.open(settings, embedder=embedder) as store:
        assert store.documents.list("kb") == []
        assert store.search("kb", "김치", k=5).hits == []
        assert store.components.vectors.count(1) == 0
        assert_consistent(store)


def test_failing_index_keeps_the_write_pending_then_catches_up(store: RagStore) -> None:
    store.collections.create("kb")
    real_upsert = store.components.vectors.upsert
    calls = {"n": 0}

    def broken_upsert(collection_id: int, ids: np.ndarray, vectors: np.ndarray, records: object = None) -> None:
        calls["n"] += 1
        raise OSError("index volume unavailable")

    store.components.vectors.upsert = broken_upsert  # type: ignore[method-assign]
    outcome = store.documents.add_text("kb", "서울 지하철 환승 규정", title="subway")
    assert outcome.status == "added" and outcome.index_state == "pending"
    assert store.search("kb", "지하철", k=3).hits == []  # stored, not yet searchable
    health = store.ops.health()
    assert health.components.vector_index.pending_operations == 1
    with store.db.read() as s:
        op = s.scalars(select(SyncOperation)).one()
    assert op.attempts == 1 and "index volume unavailable" in (op.last_error or "")

    store.components.vectors.upsert = real_upsert  # type: ignore[method-assign]
    assert store.index.sync_now().applied == 1
    assert store.search("kb", "지하철", k=3).hits[0].title == "subway"
    assert store.documents.get("kb", outcome.document_id or 0).index_state == "indexed"


def test_an_operation_that_keeps_failing_is_dead_lettered(
    make_settings: Callable[..., Settings], embedder: CountingEmbedder
) -> None:
    settings = make_settings(sync_max_attempts=2, sync_backoff_base_s=0.001)
    with RagStore.open(settings, embedder=embedder) as store:
        store.collections.create("kb")

        def broken(*_: object) -> None:
            raise OSError("disk full")

        store.components.vectors.upsert = broken  # type: ignore[method-assign]
        store.documents.add_text("kb", "text that will not index", title="t")
        store.index.sync_now()
        assert store.index.outbox_counts().dead == 1
        assert store.ops.health().status == "degraded"
        del store.components.vectors.upsert  # the real method again
        assert store.components.applier.retry_dead() == 1
        store.index.sync_now()
        assert store.index.outbox_counts().dead == 0
        assert store.ops.health().status == "ok"
