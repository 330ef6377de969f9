"""Health history (issue #20): a snapshot a minute in system_health, one per slot whatever the number of
processes, kept for RAGSTORE_HEALTH_RETENTION_DAYS, read through the facade, the API and the CLI."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from typer.testing import CliRunner

from ragstore.api.app import create_app
from ragstore.cli import app
from ragstore.clock import ManualClock
from ragstore.config import Settings
from ragstore.db.health_models import SystemHealth
from ragstore.runtime.scheduler import HEALTH_SNAPSHOT_JOB, MaintenanceScheduler, run_health_snapshot
from ragstore.service import RagStore

DIM = 8


def rows(store: RagStore) -> int:
    with store.db.read() as s:
        return int(s.scalar(select(func.count()).select_from(SystemHealth)) or 0)


def test_a_snapshot_a_minute_one_per_slot_kept_for_the_retention(
    make_settings: Callable[..., Settings], embedder: Any
) -> None:
    clock = ManualClock()
    settings = make_settings(health_retention_days=1, companion_model="none")
    with (
        RagStore.open(settings, embedder=embedder, clock=clock) as store,
        RagStore.open(settings, embedder=embedder, clock=clock) as other,  # a second server process
    ):
        store.collections.create("kb", embedding_model="synthetic", dimension=DIM)
        store.documents.add("kb", [{"text": "a", "chunks": [{"text": "a", "vector": [1.0] * DIM}]}])
        first = store.ops.snapshot()
        assert first is not None and first.status == "ok"
        assert first.components["database"]["status"] == "ok" and first.database_latency_ms is not None
        assert first.database_bytes > 0 and first.rss_bytes and first.disk_free_bytes
        assert "search" in first.cache_hit_ratios
        assert other.ops.snapshot() is None and store.ops.snapshot() is None  # this minute is taken
        assert rows(store) == 1
        clock.advance(60)
        assert other.ops.snapshot() is not None  # the next minute: whichever process comes first
        history = store.ops.history(1).snapshots
        assert [s.taken_at for s in history] == sorted(s.taken_at for s in history) and len(history) == 2
        assert store.ops.history(1).snapshots[0] == first
        clock.advance(2 * 86400)  # past the retention: the next snapshot deletes the old ones
        assert store.ops.snapshot() is not None
        assert rows(store) == 1 and len(store.ops.history(24 * 31).snapshots) == 1


def test_history_through_the_api_and_the_cli(
    make_settings: Callable[..., Settings], embedder: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings(companion_model="none")
    with RagStore.open(settings, embedder=embedder) as store:
        assert store.ops.snapshot() is not None
        with TestClient(create_app(store=store)) as client:
            got = client.get("/health/history", params={"hours": 1})
            assert got.status_code == 200, got.text
            body = got.json()
            assert body["hours"] == 1 and len(body["snapshots"]) >= 1
            assert body["snapshots"][-1]["components"]["database"]["status"] == "ok"
            for bad in (0, 24 * 31 + 1, "x"):
                assert client.get("/health/history", params={"hours": bad}).status_code == 422
    monkeypatch.setenv("RAGSTORE_DATA_DIR", str(settings.data_dir))
    if settings.database_url is not None:
        monkeypatch.setenv("DATABASE_URL", settings.database_url)
    runner = CliRunner()
    shown = runner.invoke(app, ["health", "--history", "--hours", "1", "--json"])
    assert shown.exit_code == 0, shown.output
    assert len(json.loads(shown.output)["snapshots"]) >= 1
    now = runner.invoke(app, ["health", "--json"])
    assert now.exit_code == 0 and json.loads(now.output)["status"] in ("ok", "degraded")
    table = runner.invoke(app, ["health", "--history"])
    assert table.exit_code == 0 and "health snapshots" in table.output
    assert runner.invoke(app, ["health", "--history", "--hours", "0"]).exit_code == 2


def test_the_server_schedules_the_snapshot(store: RagStore) -> None:
    scheduler = MaintenanceScheduler(store, check_schedule="", check_repair=False, health_snapshot_schedule="* * * * *")
    assert HEALTH_SNAPSHOT_JOB in scheduler.jobs
    assert HEALTH_SNAPSHOT_JOB not in MaintenanceScheduler(store, check_schedule="", check_repair=False).jobs
    assert run_health_snapshot(store) is not None  # what the job runs
    with pytest.raises(ValueError, match="RAGSTORE_HEALTH_SNAPSHOT_SCHEDULE"):
        Settings(health_snapshot_schedule="every minute")
