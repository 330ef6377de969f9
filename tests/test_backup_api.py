"""The backup endpoints, the admin page (in a real browser too), the schedule, and the CLI's exit codes."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from ragstore.api.app import create_app
from ragstore.cli import app as cli_app
from ragstore.config import Settings
from ragstore.runtime.scheduler import BACKUP_JOBS, MaintenanceScheduler, run_scheduled_backup
from ragstore.service import RagStore

from backup_helpers import COLLECTION, answers, load_corpus, sqlite_settings

REQUIRE = os.environ.get("RAGSTORE_REQUIRE_SERVICES") == "1"
CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture
def cfg(tmp_path: Path) -> Settings:
    # The default restore root (<data dir>/restores); the routes are called as the local operator (auth off),
    # as conftest's `make_settings` does for every feature test.
    return sqlite_settings(tmp_path, restore_root=None, auth="off")


@pytest.fixture
def loaded(cfg: Settings, embedder: Any) -> Iterator[RagStore]:
    with RagStore.open(cfg, embedder=embedder) as store:
        load_corpus(store)
        yield store


@pytest.fixture
def client(loaded: RagStore) -> Iterator[TestClient]:
    with TestClient(create_app(store=loaded)) as test_client:
        yield test_client


def wait_for_backup(client: TestClient, timeout_s: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = client.get("/admin/backup/status").json()
        if status["running_here"] is None and status["latest"] is not None:
            return status
        time.sleep(0.05)
    raise AssertionError("the backup did not finish")


def test_a_run_is_recorded_as_ended_before_it_stops_showing_as_running(
    loaded: RagStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Status pollers (the admin page, `wait_for_backup`) stop at "nothing running here": by then the run's
    end must be in the history, for a backup that completes and for one that fails."""
    manager = loaded.components.backup_manager
    seen: list[tuple[str, bool]] = []
    finish = manager.runs.finish

    def recording(run_id: int, *, state: Any, duration_ms: float, **fields: Any) -> None:
        seen.append((str(state), manager._running_here() is not None))
        finish(run_id, state=state, duration_ms=duration_ms, **fields)

    monkeypatch.setattr(manager.runs, "finish", recording)
    manager.create("full", trigger="api")

    def broken(*args: Any, **kwargs: Any) -> None:
        raise OSError("the disk is on fire")

    monkeypatch.setattr(manager, "_make", broken)
    with pytest.raises(OSError, match="on fire"):
        manager.create("full", trigger="api")
    assert seen == [("complete", True), ("failed", True)]
    assert manager._running_here() is None


def test_trigger_status_history_verify_and_restore_beside(client: TestClient, loaded: RagStore, tmp_path: Path) -> None:
    assert client.get("/admin/backup/list").json() == []
    started = client.post("/admin/backup/trigger", json={"kind": "full", "note": "from the API"})
    assert started.status_code == 202 and started.json()["accepted"]
    status = wait_for_backup(client)
    latest = status["latest"]
    assert latest["kind"] == "full" and latest["note"] == "from the API"
    assert status["schedule"] == {"full": None, "incremental": None, "verify_scheduled": True}
    history = client.get("/admin/backup/history").json()
    assert history[0]["action"] == "backup" and history[0]["state"] == "complete"
    assert history[0]["trigger"] == "api" and history[0]["size_bytes"] > 0 and history[0]["duration_ms"] > 0
    verified = client.post("/admin/backup/verify", json={})
    assert verified.status_code == 200 and verified.json()["ok"]
    # A running server never replaces its own store; it restores beside itself.
    refused = client.post("/admin/backup/restore", json={"backup_id": latest["id"]})
    assert refused.status_code == 422 and "never replaces its own live store" in refused.json()["error"]["message"]
    # Only below the restore root (<data dir>/restores): a relative `to` is taken from there.
    outside = client.post("/admin/backup/restore", json={"backup_id": latest["id"], "to": str(tmp_path / "beside")})
    assert outside.status_code == 422 and "<data dir>/restores" in outside.json()["error"]["message"]
    assert not (tmp_path / "beside").exists()
    restored = client.post("/admin/backup/restore", json={"backup_id": latest["id"], "to": "beside"})
    assert restored.status_code == 200, restored.json()
    assert restored.json()["consistency"]["problems"] == 0
    assert restored.json()["data_dir"] == "<data dir>/restores/beside"  # no absolute server path
    beside = loaded.settings.restore_root_dir / "beside"
    assert (beside / "ragstore.db").stat().st_mode & 0o777 == 0o600 and beside.stat().st_mode & 0o777 == 0o700
    copy_cfg = loaded.settings.model_copy(update={"data_dir": beside})
    with RagStore.open(copy_cfg, embedder=loaded.components.embedder) as copy:
        assert answers(copy) == answers(loaded)
    assert client.get("/admin/backup/dr").json()["newest_verified"]["id"] == latest["id"]


def test_bad_requests_are_4xx_and_name_the_problem(client: TestClient, tmp_path: Path) -> None:
    assert client.post("/admin/backup/trigger", json={"kind": "weekly"}).status_code == 422
    assert client.post("/admin/backup/trigger", json={"kind": "full", "extra": 1}).status_code == 422
    assert client.post("/admin/backup/trigger", json={"note": "x" * 2000}).status_code == 422
    missing = client.post("/admin/backup/restore", json={"backup_id": "nope", "to": "x"})
    assert missing.status_code == 404 and "no backup" in missing.json()["error"]["message"]
    client.post("/admin/backup/trigger", json={"kind": "snapshot"})
    backup_id = wait_for_backup(client)["latest"]["id"]
    for block in (Path(client.app.state.store.settings.backup_location) / "blocks").rglob("*"):  # type: ignore[attr-defined]
        if block.is_file():
            block.write_bytes(block.read_bytes()[:-1])
    damaged = client.post("/admin/backup/verify", json={"backup_id": backup_id})
    assert damaged.status_code == 422
    assert backup_id in damaged.json()["error"]["message"] and "blocks/" in damaged.json()["error"]["message"]
    again = client.post("/admin/backup/restore", json={"backup_id": backup_id, "to": "y"})
    restores = Path(client.app.state.store.settings.restore_root_dir)  # type: ignore[attr-defined]
    assert again.status_code == 422 and not (restores / "y").exists()  # nothing partial left behind
    assert str(tmp_path) not in again.text
    assert client.get("/admin/backup/history?limit=0").status_code == 422


def test_the_admin_page_lists_backups_and_runs(client: TestClient) -> None:
    page = client.get("/admin/view/backups")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "not protected yet" in page.text and "Backups (0)" in page.text and "No backups yet." in page.text
    client.post("/admin/backup/trigger", json={"kind": "full", "note": "<script>alert(1)</script>"})
    backup_id = wait_for_backup(client)["latest"]["id"]
    page = client.get("/admin/view/backups").text
    assert backup_id in page and 'id="backups"' in page and 'id="runs"' in page
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;" in page  # notes are escaped
    assert f'data-body="{{&#34;backup_id&#34;:&#34;{backup_id}&#34;}}"' in page  # its own verify button


def test_the_admin_page_in_a_real_browser(loaded: RagStore, tmp_path: Path) -> None:
    if not CHROMIUM.exists():
        if REQUIRE:
            pytest.fail("chromium is required in CI (apt-get install chromium)", pytrace=False)
        pytest.skip("no /usr/bin/chromium (Debian package chromium)")
    playwright = pytest.importorskip("playwright.sync_api")
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(create_app(store=loaded), host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        with playwright.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
            page = browser.new_page()
            page.goto(f"http://127.0.0.1:{port}/admin")
            assert page.locator("#dr-status").inner_text() == "not protected yet"
            page.click("#backup-full")  # "Make the first backup"
            page.wait_for_selector("#message:text-matches('^started')")
            page.goto(f"http://127.0.0.1:{port}/admin/view/backups")
            for _ in range(300):  # the backup runs in the background; the page shows it once it is complete
                if page.locator("#backups tbody tr").count():
                    break
                page.wait_for_timeout(200)
                page.reload()
            row = page.locator("#backups tbody tr").first.inner_text()
            assert "full" in row
            assert loaded.backups.list()[0].id in row
            browser.close()
    finally:
        server.should_exit = True
        thread.join(10)


def test_scheduled_backups_run_once_per_slot_verify_and_prune(loaded: RagStore) -> None:
    due = datetime(2026, 12, 1, 3, 0)
    made = run_scheduled_backup(loaded, "full", verify=True, due=due)
    assert made is not None and made.kind == "full"
    assert run_scheduled_backup(loaded, "full", verify=True, due=due) is None  # another process took the slot
    runs = loaded.backups.history()
    assert [r.action for r in runs[:3]] == ["prune", "verify", "backup"]
    assert all(r.trigger == "schedule" and r.state == "complete" for r in runs[:3])
    assert loaded.backups.list()[0].verified_at is not None
    scheduler = MaintenanceScheduler(
        loaded, check_schedule="", check_repair=True, backup_schedules={"full": "0 3 * * *", "incremental": "0 * * * *"}
    )
    assert set(scheduler.jobs) == set(BACKUP_JOBS.values())
    off = MaintenanceScheduler(
        loaded, check_schedule="", check_repair=True, backup_schedules={"full": "", "incremental": ""}
    )
    assert off.jobs == {}


def test_cli_backup_commands_and_exit_codes(cfg: Settings, loaded: RagStore, monkeypatch: pytest.MonkeyPatch) -> None:
    loaded.close()
    monkeypatch.setenv("RAGSTORE_DATA_DIR", str(cfg.data_dir))
    monkeypatch.setenv("RAGSTORE_BACKUP_REPOSITORY", cfg.backup_location)
    runner = CliRunner()
    report = runner.invoke(cli_app, ["dr", "report"])
    assert report.exit_code == 1 and "no backup has been made" in report.output
    made = runner.invoke(cli_app, ["backup", "create", "--kind", "full", "--note", "cli"])
    assert made.exit_code == 0, made.output
    listed = runner.invoke(cli_app, ["backup", "list", "--json"])
    backup_id = __import__("json").loads(listed.output)[0]["id"]
    assert runner.invoke(cli_app, ["backup", "verify"]).exit_code == 0
    assert runner.invoke(cli_app, ["dr", "report"]).exit_code == 0
    bad = runner.invoke(cli_app, ["backup", "create", "--kind", "weekly"])
    assert bad.exit_code == 2 and "--kind must be one of" in bad.output
    assert runner.invoke(cli_app, ["backup", "show", "nope"]).exit_code == 2
    key = runner.invoke(cli_app, ["backup", "keygen"]).output.strip()
    assert len(key) == 44
    aborted = runner.invoke(cli_app, ["backup", "restore", backup_id], input="n\n")
    assert aborted.exit_code == 3 and "not confirmed" in aborted.output  # stdin is not a terminal: not asked
    restored = runner.invoke(cli_app, ["backup", "restore", backup_id, "--yes"])
    assert restored.exit_code == 0 and "0 problems" in restored.output, restored.output
    _ = COLLECTION


def test_openapi_documents_every_backup_answer(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]

    def answer(method: str, path: str) -> str:
        responses = paths[f"/admin/backup/{path}"][method]["responses"]
        schema = next(r for code, r in responses.items() if code.startswith("2"))["content"]["application/json"]
        return json.dumps(schema["schema"])

    assert answer("post", "trigger").endswith('/BackupStarted"}')
    assert answer("get", "status").endswith('/BackupStatus"}')
    assert "/BackupRunInfo" in answer("get", "history") and "/BackupSummary" in answer("get", "list")
    assert answer("post", "verify").endswith('/VerifyResult"}')
    assert answer("post", "restore").endswith('/RestoreReport"}')
    assert answer("get", "dr").endswith('/ReadinessReport"}')
