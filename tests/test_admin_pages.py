"""The admin pages over HTTP on both databases: each renders (empty and with data) under the strict policy,
shows what a person should do next, escapes what users wrote, and its actions do what they say, audited.
The same pages in a real browser: tests/test_admin_pages_browser.py."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from ragstore.api.admin_ui.render import NAVIGATION, POLICY
from ragstore.api.app import create_app
from ragstore.clock import ManualClock
from ragstore.config import Settings
from ragstore.db.models import Collection, DocumentChunk, OpState, SyncOperation
from ragstore.ops.history import record_snapshot
from ragstore.ops.metrics import HttpTotals
from ragstore.service import RagStore

PAGES = [path for path, _ in NAVIGATION]
INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.IGNORECASE)


@pytest.fixture
def client(store: RagStore) -> Iterator[TestClient]:
    with TestClient(create_app(store=store), base_url="http://127.0.0.1") as test_client:
        yield test_client


def post(client: TestClient, url: str, body: dict[str, Any] | None = None) -> Any:
    return client.post(url, json=body or {})


def audited(store: RagStore, action: str) -> list[Any]:
    return [e for e in store.audit.list(action=action, limit=50)]


def test_every_page_renders_its_empty_state_under_the_strict_policy(client: TestClient) -> None:
    expected = {
        "/admin": "not protected yet",
        "/admin/view/backups": "No backups yet.",
        "/admin/view/consistency": "No consistency check has finished yet.",
        "/admin/view/keys": "No API keys yet.",
        "/admin/view/audit": "not verified yet",
        "/admin/view/jobs": "No jobs.",
        "/admin/view/maintenance": "No maintenance has run yet.",
        "/admin/view/conversations": "No conversations yet.",
    }
    assert set(expected) == set(PAGES)
    for path, empty in expected.items():
        page = client.get(path)
        assert page.status_code == 200, (path, page.text)
        assert page.headers["content-security-policy"] == POLICY and page.headers["cache-control"] == "no-store"
        assert empty in page.text, path
        assert not INLINE_SCRIPT.search(page.text) and " style=" not in page.text and " onclick=" not in page.text
        assert 'href="/admin/assets/admin.css"' in page.text and 'aria-current="page"' in page.text
        assert "http://" not in page.text and "https://" not in page.text  # nothing from elsewhere
    assert client.get("/admin/assets/admin.js").status_code == 200
    assert client.get("/admin/assets/nothing.js").status_code == 404
    assert client.get("/admin/assets/../templates/base.html").status_code == 404


def test_pages_show_real_data_escaped(store: RagStore, client: TestClient) -> None:
    store.collections.create("kb")
    store.documents.add_text("kb", "Backups are verified by restoring them. 백업은 복원해서 검증한다.", title="ops")
    store.index.wait()
    store.keys.create("<b>reader</b>", "read", ["kb"])
    conversation = store.chat.create(title="<script>alert(1)</script>", collections=["kb"])
    store.chat.add(conversation.id, role="user", content="How are backups verified?")
    store.chat.add(conversation.id, role="assistant", content="By restoring them <img src=x onerror=alert(2)>.")
    store.consistency.check(trigger="api")
    post(client, "/admin/maintenance/cleanup", {"dry_run": True})

    keys = client.get("/admin/view/keys").text
    assert "&lt;b&gt;reader&lt;/b&gt;" in keys and "<b>reader</b>" not in keys and "read on kb" in keys
    conversations = client.get("/admin/view/conversations").text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in conversations and "<script>alert" not in conversations
    found = client.get("/admin/view/conversations", params={"q": "restoring"}).text
    assert "<mark>restoring</mark>" in found and "<img" not in found and "&lt;img src=x onerror=alert(2)&gt;" in found
    assert client.get("/admin/view/conversations", params={"q": "x" * 1001}).status_code == 422
    consistency = client.get("/admin/view/consistency").text
    assert 'id="findings-none"' in consistency and 'id="consistency"' in consistency
    assert client.get("/admin/view/consistency", params={"report": 999}).text.count("No consistency report 999") == 1
    assert client.get("/admin/view/consistency", params={"report": 0}).status_code == 422
    maintenance = client.get("/admin/view/maintenance").text
    assert "dry run" in maintenance and "expired sessions" in maintenance
    audit = client.get("/admin/view/audit", params={"action": "key.*"}).text
    assert "key.create" in audit and "maintenance.cleanup" not in audit
    assert client.get("/admin/view/jobs", params={"state": "nope"}).status_code == 422
    # One time format on every page: UTC to the second, with the exact value for a machine.
    for path in PAGES:
        text = client.get(path).text
        shown = re.findall(r"<time datetime=\"([^\"]+)\">([^<]+)</time>", text)
        assert all(re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", label) for _, label in shown), path


def test_the_dashboard_draws_rate_and_latency_from_the_snapshots(
    make_settings: Callable[..., Settings], embedder: Any
) -> None:
    clock = ManualClock()
    with RagStore.open(make_settings(), embedder=embedder, clock=clock) as store:
        report = store.ops.health()
        for requests, seconds in [(100, 1.0), (400, 4.0), (40, 0.5), (160, 2.0)]:
            record_snapshot(
                store.db,
                clock,
                report,
                database_bytes=1,
                data_dir=store.settings.data_dir,
                retention=timedelta(days=1),
                http=HttpTotals(requests, 0, seconds),
            )
            clock.advance(60)
        with TestClient(create_app(store=store), base_url="http://127.0.0.1") as client:
            page = client.get("/admin").text
    assert page.count("<polyline") >= 4 and "Not enough health history" not in page
    # 300 requests in the first minute, then a restart (the counter fell: a gap), then 120.
    assert "now 120.0" in page  # requests per minute at the last point
    assert "now 12.5" in page  # mean latency (ms): 1.5 s over 120 requests


def test_actions_do_what_they_say_and_are_audited(store: RagStore, client: TestClient) -> None:
    store.collections.create("kb")
    store.documents.add_text("kb", "one chunk of text", title="t")
    store.index.wait()
    job_id = store.jobs.enqueue("checkpoint")
    claimed = store.components.jobs.claim("test-worker")
    assert claimed is not None and claimed.id == job_id
    store.components.jobs.fail(job_id, "test-worker", "disk full", permanent=True)

    def dead_operation(s: Any) -> None:  # an operation the index refused every time (as test_consistency makes one)
        cid = s.scalar(select(Collection.id).where(Collection.name == "kb"))
        chunk = s.scalar(select(DocumentChunk.id).limit(1))
        s.add(SyncOperation(collection_id=cid, kind="upsert", chunk_ids=[chunk], state=OpState.DEAD, attempts=8))

    store.db.write(dead_operation)

    outbox = client.get("/admin/outbox").json()
    assert outbox["dead"] == 1 and outbox["dead_operations"][0]["chunks"] == 1
    assert "1 dead operations" in client.get("/admin/view/jobs").text
    retried = post(client, "/admin/outbox/retry")
    assert retried.status_code == 200 and retried.json() == {"requeued": 1}
    assert client.get("/admin/outbox").json()["dead"] == 0
    assert audited(store, "outbox.retry_dead")[0].details["requeued"] == 1

    assert post(client, "/admin/jobs/999999/retry").status_code == 404
    assert 'id="retry-job-' in client.get("/admin/view/jobs", params={"state": "dead"}).text
    again = post(client, f"/admin/jobs/{job_id}/retry")
    assert again.status_code == 200 and again.json()["state"] == "queued" and again.json()["attempts"] == 0
    assert post(client, f"/admin/jobs/{job_id}/retry").status_code == 409  # no longer dead
    assert [e.target for e in audited(store, "job.retry")][:2] == [f"job:{job_id}", f"job:{job_id}"]
    assert [e.outcome for e in audited(store, "job.retry")][:2] == ["failure", "success"]

    run = post(client, "/admin/maintenance/optimize", {"dry_run": True})
    assert run.status_code == 200 and run.json()["action"] == "optimize" and run.json()["dry_run"] is True
    assert run.json()["steps"] and run.json()["state"] == "complete"
    assert post(client, "/admin/maintenance/vacuum").status_code == 422
    assert post(client, "/admin/maintenance/cleanup", {"dry_run": "yes please"}).status_code == 422
    runs = client.get("/admin/maintenance", params={"limit": 5}).json()
    assert [r["id"] for r in runs] == [run.json()["id"]]
    assert client.get("/admin/maintenance", params={"limit": 0}).status_code == 422

    verified = post(client, "/admin/audit/verify")
    assert verified.status_code == 200 and verified.json()["ok"] is True
    assert "chain intact" in client.get("/admin/view/audit").text

    key = store.keys.create("ci", "read")
    revoked = post(client, f"/admin/keys/{key.id}/revoke")
    assert revoked.status_code == 200 and revoked.json()["active"] is False
    assert post(client, "/admin/keys/999999/revoke").status_code == 404
    assert audited(store, "key.revoke")


def test_pages_need_a_logged_in_admin(make_settings: Callable[..., Settings], embedder: Any) -> None:
    with RagStore.open(make_settings(auth="required"), embedder=embedder) as store:
        reader = store.keys.create("reader", "read").key
        admin = store.keys.create("admin", "admin").key
        with TestClient(create_app(store=store), base_url="http://127.0.0.1") as client:
            for path in PAGES:
                nobody = client.get(path, follow_redirects=False)
                assert nobody.status_code == 303 and nobody.headers["location"] == "/admin/login", path
                assert client.get(path, headers={"Authorization": f"Bearer {reader}"}).status_code == 403
                assert client.get(path, headers={"Authorization": f"Bearer {admin}"}).status_code == 200
            for url in ("/admin/outbox/retry", "/admin/maintenance/cleanup", "/admin/audit/verify"):
                assert client.post(url, json={}).status_code == 401
                assert client.post(url, json={}, headers={"Authorization": f"Bearer {reader}"}).status_code == 403
            assert client.get("/admin/assets/admin.css").status_code == 200  # public files of the package
