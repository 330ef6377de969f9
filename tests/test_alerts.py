"""Alerts to a webhook (issue #20), against a real HTTP receiver on loopback: each condition announced once
while it lasts and once when it clears, retried with backoff, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from ragstore.clock import ManualClock
from ragstore.config import Settings
from ragstore.db.models import BackupRun, RunState
from ragstore.db.state import AUDIT_VERIFIED_KEY, write_state
from ragstore.service import RagStore
from ragstore.sync.outbox import queue_operation


class Receiver:
    """An HTTP server that records every JSON body posted to it and answers with the queued statuses (200
    once they run out)."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.statuses: list[int] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                owner.bodies.append(json.loads(self.rfile.read(length)))
                self.send_response(owner.statuses.pop(0) if owner.statuses else 200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/secret-token"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def take(self) -> list[tuple[str, str]]:
        taken = [(b["condition"], b["status"]) for b in self.bodies]
        self.bodies.clear()
        return taken


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    yield found
    found.server.shutdown()


def test_conditions_are_announced_once_and_when_they_clear(
    make_settings: Callable[..., Settings], embedder: Any, receiver: Receiver
) -> None:
    clock = ManualClock()
    settings = make_settings(alert_webhook_url=receiver.url, alert_disk_free_ratio=0.0, companion_model="none")
    with RagStore.open(settings, embedder=embedder, clock=clock) as store:
        assert store.ops.snapshot() is not None and receiver.take() == []  # nothing wrong: silence

        def failed_backup(s: Any) -> None:
            s.add(BackupRun(trigger="schedule", state=RunState.FAILED, action="backup", kind="full", error="disk full"))

        store.db.write(failed_backup)
        write_state(store.db, AUDIT_VERIFIED_KEY, {"at": clock.now().isoformat(), "ok": False})
        clock.advance(60)
        store.ops.snapshot()
        assert any("disk full" in b["text"] for b in receiver.bodies)  # the backup's own error
        assert sorted(receiver.take()) == [("audit_broken", "firing"), ("backup_failed", "firing")]
        clock.advance(60)
        store.ops.snapshot()
        assert receiver.take() == []  # still the same conditions: not repeated
        store.audit.verify()  # the log verifies again
        clock.advance(60)
        store.ops.snapshot()
        assert receiver.take() == [("audit_broken", "resolved")]
        clock.advance(60)
        store.ops.snapshot()
        assert receiver.take() == []
        store.collections.create("kb", embedding_model="synthetic", dimension=8)

        def dead_operation(s: Any) -> None:
            queue_operation(s, 1, "upsert", [], lease=False).state = "dead"

        store.db.write(dead_operation)
        clock.advance(60)
        store.ops.snapshot()
        body = receiver.bodies[0]
        assert receiver.take() == [("dead_letters", "firing")]
        assert "1 outbox operations" in body["text"] and body["since"] == clock.now().isoformat()


def test_a_message_is_retried_with_backoff_then_at_the_next_minute(
    make_settings: Callable[..., Settings], embedder: Any, receiver: Receiver
) -> None:
    clock = ManualClock()
    settings = make_settings(alert_webhook_url=receiver.url, alert_disk_free_ratio=1.0, companion_model="none")
    with RagStore.open(settings, embedder=embedder, clock=clock) as store:
        waits: list[float] = []
        store.ops.alert_sleep = waits.append
        receiver.statuses = [503, 500, 502]  # every attempt of the first minute fails
        store.ops.snapshot()
        assert [c for c, _ in receiver.take()] == ["disk_nearly_full"] * 3 and waits == [0.5, 1.0]
        clock.advance(60)
        store.ops.snapshot()  # delivered now, once
        body = receiver.bodies[0]
        assert receiver.take() == [("disk_nearly_full", "firing")]
        assert body["text"].startswith("[ragstore] FIRING disk_nearly_full:") and "free" in body["text"]
        clock.advance(60)
        store.ops.snapshot()
        assert receiver.take() == []


def test_the_webhook_url_is_checked() -> None:
    with pytest.raises(ValueError, match="alert_webhook_url"):
        Settings(alert_webhook_url="hooks.example.org/x")
    assert Settings(alert_webhook_url="https://hooks.example.org/x").alert_webhook_url == "https://hooks.example.org/x"
    assert Settings().alert_webhook_url == ""  # off
