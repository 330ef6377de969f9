"""Every admin page in a real browser (Debian's Chromium through Playwright), over a store with real data:
each renders, each button does what it says (the page reloads to show the new state), the strict policy
blocks nothing the pages need, and a screenshot of each is kept as a test artifact
(RAGSTORE_TEST_ARTIFACTS, default test-artifacts/ at the repository's root)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ragstore.api.app import create_app
from ragstore.config import Settings
from ragstore.db.models import Collection, DocumentChunk, OpState, SyncOperation
from ragstore.service import RagStore
from servers import app_in_thread

from backup_helpers import load_corpus

CHROMIUM = Path("/usr/bin/chromium")
REQUIRE = os.environ.get("RAGSTORE_REQUIRE_SERVICES") == "1"
PASSWORD = "correct horse battery staple"
ARTIFACTS = Path(os.environ.get("RAGSTORE_TEST_ARTIFACTS", Path(__file__).parent.parent / "test-artifacts"))


@pytest.fixture
def served(make_settings: Callable[..., Settings], embedder: Any) -> Iterator[tuple[str, RagStore, dict[str, int]]]:
    if not CHROMIUM.exists():
        if REQUIRE:
            pytest.fail("chromium is required in CI (apt-get install chromium)", pytrace=False)
        pytest.skip("no /usr/bin/chromium (Debian package chromium)")
    from sqlalchemy import select

    with RagStore.open(make_settings(auth="required"), embedder=embedder) as store:
        store.users.create("admin@example.org", PASSWORD, role="admin")
        load_corpus(store)
        key = store.keys.create("reporting", "read", ["docs"])
        job_id = store.jobs.enqueue("checkpoint")
        assert store.components.jobs.claim("a-worker-that-died") is not None
        store.components.jobs.fail(job_id, "a-worker-that-died", "the disk was full", permanent=True)

        def dead_operation(s: Any) -> None:  # one the index refused every time (as test_consistency makes one)
            cid = s.scalar(select(Collection.id).where(Collection.name == "docs"))
            chunk = s.scalar(select(DocumentChunk.id).limit(1))
            s.add(SyncOperation(collection_id=cid, kind="upsert", chunk_ids=[chunk], state=OpState.DEAD, attempts=8))

        store.db.write(dead_operation)
        conversation = store.chat.create(title="Backups question", collections=["docs"])
        store.chat.add(conversation.id, role="user", content="How are backups checked?")
        store.chat.add(conversation.id, role="assistant", content="A backup is verified by restoring it beside.")
        store.consistency.check(trigger="api")
        with app_in_thread(create_app(store=store)) as base:
            for _ in range(3):  # some requests of the key, for the usage table
                httpx.get(f"{base}/v1/collections", headers={"Authorization": f"Bearer {key.key}"}, timeout=30)
            store.components.usage_writer.flush()
            store.ops.snapshot()
            yield base, store, {"job": job_id, "key": key.id}


@pytest.mark.parametrize("database_url", [None], ids=["sqlite"])
def test_every_admin_page_and_button_in_chromium(served: tuple[str, RagStore, dict[str, int]]) -> None:
    playwright = pytest.importorskip("playwright.sync_api")
    base, store, ids = served
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    problems: list[str] = []
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.on("dialog", lambda d: d.accept())  # the confirmations of restore, revoke, retry, repair
            requests_elsewhere: list[str] = []
            page.on("request", lambda r: None if r.url.startswith(base) else requests_elsewhere.append(r.url))

            page.goto(f"{base}/admin/login")
            page.fill("#email", "admin@example.org")
            page.fill("#password", PASSWORD)
            page.click("#submit")
            page.wait_for_url(f"{base}/admin")

            def act(selector: str) -> None:
                """Click a button and wait for the reload that shows what it did (or fail with its message)."""
                try:
                    with page.expect_navigation(timeout=60_000):
                        page.click(selector)
                except Exception as exc:
                    raise AssertionError(f"{selector}: {page.inner_text('#message')}") from exc

            def shot(name: str) -> None:
                page.screenshot(path=str(ARTIFACTS / f"admin-{name}.png"), full_page=True)

            # The dashboard: components, cards, the charts' frame; its check button stores a new report.
            assert page.locator("#components tbody tr").count() >= 4
            assert page.inner_text("#dr-status") == "not protected yet"
            checks = len(store.consistency.history(100))
            act("#check-consistency")
            assert len(store.consistency.history(100)) == checks + 1
            shot("dashboard")

            # Jobs and the outbox (before the backup: a restore's check counts a dead operation as a problem).
            page.goto(f"{base}/admin/view/jobs")
            assert (
                "the disk was full" in page.inner_text("#jobs")
                and page.locator("#dead-operations tbody tr").count() == 1
            )
            shot("jobs")
            act("#retry-outbox")
            assert "no dead operations" in page.inner_text("#outbox-dead")
            act(f"#retry-job-{ids['job']}")
            assert store.jobs.get(ids["job"]).state == "queued"

            # Backups: make one, verify it, restore it beside the live store.
            page.goto(f"{base}/admin/view/backups")
            act("#backup-full")
            for _ in range(300):
                if page.locator("#backups tbody tr").count():
                    break
                page.wait_for_timeout(200)
                page.reload()
            backup_id = store.backups.list()[0].id
            assert backup_id in page.inner_text("#backups")
            act("#verify-1")
            assert "ok" in page.locator("#backups tbody tr").first.inner_text()
            act("#restore-1")
            restored = list((store.settings.data_dir / "restores").glob("beside-*"))
            assert len(restored) == 1 and any(restored[0].iterdir())
            assert page.inner_text("#dr-status") in ("ready", "warning")
            shot("backups")

            # Consistency: check and repair, then the report's findings.
            page.goto(f"{base}/admin/view/consistency")
            act("#repair-consistency")
            assert "with repair" in page.inner_text("#report") and page.locator("#consistency tbody tr").count() >= 3
            shot("consistency")

            # Keys and usage: the key's requests are counted; revoking it ends it.
            page.goto(f"{base}/admin/view/keys")
            assert "reporting" in page.inner_text("#keys") and int(page.inner_text("#usage-requests")) >= 3
            act(f"#revoke-{ids['key']}")
            assert "revoked" in page.inner_text("#keys") and not store.keys.list()[0].active
            shot("keys")

            # The audit log: verify, and the revocation is there.
            page.goto(f"{base}/admin/view/audit")
            act("#verify-audit")
            assert page.inner_text("#audit-status") == "chain intact"
            assert "key.revoke" in page.inner_text("#audit")
            shot("audit")

            # Maintenance: a dry run is recorded and shown.
            page.goto(f"{base}/admin/view/maintenance")
            act("#cleanup-dry-run")
            assert "dry run" in page.inner_text("#maintenance") and "expired sessions" in page.inner_text(
                "#maintenance"
            )
            shot("maintenance")

            # Conversations: the newest, and a search over messages with its matches marked.
            page.goto(f"{base}/admin/view/conversations")
            assert "Backups question" in page.inner_text("#conversations")
            page.fill("#q", "restoring")
            with page.expect_navigation():
                page.click("#search")
            assert page.locator("#hits mark").count() >= 1
            shot("conversations")

            assert not problems, problems  # no script error, no request the policy refused
            assert not requests_elsewhere, requests_elsewhere
        finally:
            browser.close()
    assert sorted(f.name for f in ARTIFACTS.glob("admin-*.png")) == sorted(
        f"admin-{n}.png"
        for n in ("audit", "backups", "consistency", "conversations", "dashboard", "jobs", "keys", "maintenance")
    )
