"""The audit log inside an open store: what is recorded, by whom; the CLI, the API, the scheduler, backups."""

from __future__ import annotations

import json
import multiprocessing
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from apscheduler.triggers.cron import CronTrigger
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from ragstore.api.app import create_app
from ragstore.cli import app as cli_app
from ragstore.clock import ManualClock
from ragstore.config import Settings
from ragstore.errors import NotFound
from ragstore.runtime.scheduler import AUDIT_CHECKPOINT_JOB, MaintenanceScheduler, run_scheduled_checkpoint
from ragstore.security.audit import AuditTrail
from ragstore.security.context import acting_as
from ragstore.security.principal import Principal
from ragstore.service import RagStore

from backup_helpers import backup_settings

runner = CliRunner()


def test_collection_and_document_changes_are_recorded_with_their_actor(store: RagStore) -> None:
    with acting_as(Principal.operator("alice"), request_id="r-1", client_address="127.0.0.1"):
        store.collections.create("kb")
        outcome = store.documents.add_text("kb", "a document to delete", title="t")
        store.index.wait()
        store.documents.delete("kb", outcome.document_id)
        store.collections.delete("kb")
        with pytest.raises(NotFound):
            store.collections.delete("kb")
    rows = list(reversed(store.audit.list(limit=10)))
    assert [(r.action, r.outcome) for r in rows] == [
        ("collection.create", "success"),
        ("document.delete", "success"),
        ("collection.delete", "success"),
        ("collection.delete", "failure"),
    ]
    assert {r.actor for r in rows} == {"cli:alice"}
    assert rows[0].request_id == "r-1" and rows[0].client_address == "127.0.0.1"
    assert rows[1].target == f"kb/{outcome.document_id}"
    assert "does not exist" in rows[3].details["error"]
    assert store.audit.verify().ok


def test_a_change_and_its_record_roll_back_together(store: RagStore) -> None:
    """Appended in the change's transaction: a create that fails leaves neither the collection nor a success."""
    store.collections.create("kb")
    before = store.audit.list(limit=10)
    with pytest.raises(Exception, match="already exists"):
        store.collections.create("kb")
    after = store.audit.list(limit=10)
    assert len(after) == len(before) + 1 and after[0].outcome == "failure"


def test_repair_rebuild_and_server_start_are_recorded(store: RagStore) -> None:
    store.collections.create("kb")
    store.index.rebuild("kb")
    store.audit.record_start(store.settings, version="9.9")
    actions = {r.action: r for r in store.audit.list(limit=10)}
    assert actions["index.rebuild"].target == "kb"
    start = actions["server.start"].details
    assert start["version"] == "9.9" and "RAGSTORE_AUTH" in start["settings"]
    assert "DATABASE_URL (effective)" in start["settings"]


def test_scheduled_checkpoints_follow_the_manual_clock(make_settings: Callable[..., Settings], embedder: Any) -> None:
    clock = ManualClock(datetime(2026, 12, 1, 11, 59, 30, tzinfo=UTC))
    with RagStore.open(make_settings(), embedder=embedder, clock=clock) as store:
        trigger = CronTrigger.from_crontab(store.settings.audit_checkpoint_schedule, timezone=UTC)
        scheduler = MaintenanceScheduler(
            store, check_schedule="", check_repair=False, audit_checkpoint_schedule="0 * * * *"
        )
        assert AUDIT_CHECKPOINT_JOB in scheduler.jobs
        written = []
        for _ in range(3):  # three hours, nothing else happening: a checkpoint each hour all the same
            due = trigger.get_next_fire_time(None, clock.now() + timedelta(seconds=1))
            clock.advance((due - clock.now()).total_seconds())
            made = run_scheduled_checkpoint(store)
            assert made is not None and made.created_at == due
            assert run_scheduled_checkpoint(store) is None  # another process's run of the same slot: skipped
            written.append(made)
        assert [c.sequence for c in written] == [0, 0, 0]
        assert written[1].previous_signature == written[0].signature
        verdict = store.audit.verify()
        assert verdict.ok and verdict.checkpoints_checked == 3


def test_backups_carry_a_checkpoint_and_verify_the_copied_log(
    make_settings: Callable[..., Settings], tmp_path: Path, embedder: Any, database_url: str | None
) -> None:
    cfg = backup_settings(make_settings, tmp_path)
    with RagStore.open(cfg, embedder=embedder) as store:
        store.collections.create("kb")
        made = store.backups.create("snapshot")
        assert made is not None
        manifest = store.backups.show(made.id)
        carried = manifest.audit_checkpoint
        assert carried is not None and carried.sequence == 1  # the collection.create row
        [verified] = store.backups.verify(made.id)
        assert verified.audit is not None and verified.audit.startswith("verified: 1 rows")
        actions = [r.action for r in store.audit.list(limit=10)]
        assert actions[:2] == ["backup.verify", "backup.create"]
        if database_url is None:
            target = str(tmp_path / "restored")
            report = store.backups.restore_copy(made.id, target)
            assert report.audit is not None and report.audit.ok, report.audit


def _append_in_child(settings_json: str, n: int) -> None:
    settings = Settings.model_validate_json(settings_json)
    from ragstore.db.engine import Database

    db = Database(settings)
    trail = AuditTrail(db)
    for i in range(n):
        trail.record("document.delete", target=f"p/{i}")
    db.dispose()


def test_appends_from_several_processes_never_fork_the_chain(store: RagStore) -> None:
    payload = store.settings.model_dump_json()
    context = multiprocessing.get_context("spawn")
    children = [context.Process(target=_append_in_child, args=(payload, 10)) for _ in range(3)]
    for child in children:
        child.start()
    for child in children:
        child.join(120)
        assert child.exitcode == 0
    verdict = store.audit.verify()
    assert verdict.ok and verdict.head_sequence == verdict.rows_checked == 30


def test_cli_verify_list_and_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, database_url: str | None
) -> None:
    monkeypatch.setenv("RAGSTORE_DATA_DIR", str(tmp_path / "data"))
    if database_url is not None:
        monkeypatch.setenv("DATABASE_URL", database_url)
    assert runner.invoke(cli_app, ["init"]).exit_code == 0
    assert runner.invoke(cli_app, ["collections", "create", "kb"]).exit_code == 0
    done = runner.invoke(cli_app, ["audit", "list", "--action", "migration.*", "--json"])
    [migrated] = json.loads(done.output)  # the upgrade that created the log is its first row
    assert (migrated["sequence"], migrated["action"], migrated["details"]["previous"]) == (
        1,
        "migration.upgrade",
        "base",
    )
    done = runner.invoke(cli_app, ["audit", "checkpoint", "--json"])
    assert done.exit_code == 0 and json.loads(done.output)["sequence"] >= 1
    done = runner.invoke(cli_app, ["audit", "list", "--action", "collection.create", "--json"])
    rows = json.loads(done.output)
    assert done.exit_code == 0 and rows[0]["target"] == "kb" and rows[0]["actor"].startswith("cli:")
    done = runner.invoke(cli_app, ["audit", "verify", "--json"])
    assert done.exit_code == 0 and json.loads(done.output)["ok"]
    done = runner.invoke(cli_app, ["audit", "verify"])
    assert done.exit_code == 0 and "intact" in done.output
    assert runner.invoke(cli_app, ["audit", "list", "--since", "yesterday"]).exit_code == 2
    since = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    assert runner.invoke(cli_app, ["audit", "list", "--since", since]).exit_code == 0


def test_api_lists_and_verifies_for_admins_only(make_settings: Callable[..., Settings], embedder: Any) -> None:
    with RagStore.open(make_settings(), embedder=embedder) as store:
        store.collections.create("kb")
        with TestClient(create_app(store=store)) as client:
            listed = client.get("/v1/audit", params={"action": "collection.create", "limit": 5})
            assert listed.status_code == 200 and listed.json()[0]["target"] == "kb"
            assert client.get("/v1/audit", params={"limit": 100_000}).status_code == 422
            verdict = client.post("/v1/audit/verify", headers={"X-Requested-With": "test"})
            assert verdict.status_code == 200 and verdict.json()["ok"] is True
    with (
        RagStore.open(make_settings(auth="required"), embedder=embedder) as store,
        TestClient(create_app(store=store)) as client,
    ):
        assert client.get("/v1/audit").status_code == 401
        assert client.post("/v1/audit/verify", headers={"X-Requested-With": "test"}).status_code == 401


def test_the_scheduled_check_verifies_the_log_and_reports_a_broken_chain(
    store: RagStore, caplog: pytest.LogCaptureFixture
) -> None:
    from sqlalchemy import text

    from ragstore.runtime.scheduler import run_scheduled_check

    store.collections.create("kb")
    store.collections.create("kb2")
    drop = (
        ["DROP TRIGGER audit_logs_no_update"]
        if store.settings.is_sqlite
        else ["DROP TRIGGER audit_logs_no_update ON audit_logs"]
    )
    with store.db.engine.begin() as c:
        for statement in [*drop, "UPDATE audit_logs SET actor = 'nobody' WHERE sequence = 1"]:
            c.execute(text(statement))
    with caplog.at_level("ERROR"):
        assert run_scheduled_check(store, repair=False, due=datetime(2026, 12, 1, 4, 30)) is not None
    broken = [r for r in caplog.records if r.levelname == "ERROR" and "audit log does not verify" in r.getMessage()]
    assert broken and "sequence 1 (edited)" in broken[0].getMessage()
    with store.db.read() as s:  # reported, not repaired
        assert s.execute(text("SELECT actor FROM audit_logs WHERE sequence = 1")).scalar() == "nobody"


def test_a_failed_restore_is_recorded_in_the_live_log(
    make_settings: Callable[..., Settings], tmp_path: Path, embedder: Any
) -> None:
    from ragstore.service import restore_backup

    cfg = backup_settings(make_settings, tmp_path)
    with RagStore.open(cfg, embedder=embedder) as store:
        made = store.backups.create("snapshot")
        assert made is not None
    with pytest.raises(NotFound):
        restore_backup(cfg, "20260101T000000000000Z-full-abcdef", to=str(tmp_path / "elsewhere"))
    with RagStore.open(cfg, embedder=embedder) as store:
        failed = store.audit.list(action="backup.restore", limit=5)
        assert failed and failed[0].outcome == "failure" and failed[0].target.endswith("abcdef")
