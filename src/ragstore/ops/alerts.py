"""Alerts for people without Prometheus: a JSON message to RAGSTORE_ALERT_WEBHOOK_URL when something needs a
person, and one when it clears.

The conditions are read from the store each minute, right after the health snapshot, by the process that
took the snapshot's slot (ops/history.py), so one process speaks for the store: the last backup, verify or
consistency check failed, the last check found drift, outbox operations or jobs are dead-lettered, the audit
log did not verify, the data directory's disk is nearly full. A condition is announced once while it lasts
(which ones were announced is kept in `store_state`, so a restart or another process does not repeat it)
and once more when it clears. A message that cannot be delivered is retried with backoff, then again at
the next minute. The body has a `text` field, so a Slack (or compatible) incoming webhook shows it as is.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
from sqlalchemy import select

from ragstore.clock import Clock
from ragstore.db.engine import Database
from ragstore.db.models import BackupRun, ConsistencyReport, RunState
from ragstore.db.state import AUDIT_VERIFIED_KEY, read_state, write_state
from ragstore.schemas import HealthSnapshot

__all__ = ["ALERTS_KEY", "AlertNotifier", "Delivery", "store_conditions"]

log = logging.getLogger(__name__)
ALERTS_KEY = "alerts"  # store_state: condition -> {"since", "message", "notified"}
ATTEMPTS = 3
BACKOFF_S = 0.5  # then 1 s: short, because the scheduler's thread waits; undelivered ones go again next minute
FAILED = (RunState.FAILED, RunState.INTERRUPTED)


@dataclass(frozen=True)
class Delivery:
    condition: str
    status: str  # firing or resolved
    delivered: bool
    attempts: int


def store_conditions(
    db: Database, snapshot: HealthSnapshot, *, disk_free_ratio: float, disk_size: int | None
) -> dict[str, str]:
    """What needs a person now: condition name -> one line saying what and what to do."""
    found: dict[str, str] = {}
    with db.read() as s:
        for action in ("backup", "verify"):
            last = s.execute(
                select(BackupRun.state, BackupRun.error, BackupRun.kind)
                .where(BackupRun.action == action, BackupRun.state != RunState.RUNNING)
                .order_by(BackupRun.id.desc())
                .limit(1)
            ).first()
            if last is not None and last[0] in FAILED:
                found[f"{action}_failed"] = f"the last {action} ({last[2] or 'backup'}) failed: {last[1] or last[0]}"
        check = s.execute(
            select(ConsistencyReport.state, ConsistencyReport.error, ConsistencyReport.problems)
            .where(ConsistencyReport.state != RunState.RUNNING)
            .order_by(ConsistencyReport.id.desc())
            .limit(1)
        ).first()
    if check is not None and check[0] in FAILED:
        found["check_failed"] = f"the last consistency check failed: {check[1] or check[0]}"
    elif check is not None and check[2]:
        found["drift_found"] = (
            f"the last consistency check found {check[2]} problems between SQL and the vector index: "
            "`ragstore check --repair`"
        )
    if snapshot.outbox_dead or snapshot.jobs_dead:
        found["dead_letters"] = (
            f"{snapshot.outbox_dead} outbox operations and {snapshot.jobs_dead} jobs are dead-lettered: "
            "`ragstore check --repair` re-queues the operations, `ragstore jobs list --state dead` shows the jobs"
        )
    audit = read_state(db, AUDIT_VERIFIED_KEY) or {}
    if audit.get("ok") is False:
        found["audit_broken"] = "the audit log does not verify: `ragstore audit verify` names the first bad row"
    if snapshot.disk_free_bytes is not None and disk_size:
        free = snapshot.disk_free_bytes / disk_size
        if free < disk_free_ratio:
            found["disk_nearly_full"] = f"{free:.1%} of the data directory's disk is free"
    return found


class AlertNotifier:
    def __init__(
        self,
        db: Database,
        url: str,
        clock: Clock,
        *,
        sleep: Callable[[float], None] = time.sleep,
        timeout_s: float = 5.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.db = db
        self.url = url
        self.clock = clock
        self.sleep = sleep
        self.timeout_s = timeout_s
        self.transport = transport

    def update(self, conditions: dict[str, str]) -> list[Delivery]:
        """Announce conditions not yet announced and those that cleared; keep what was announced."""
        known: dict[str, Any] = read_state(self.db, ALERTS_KEY) or {}
        before = json.dumps(known, sort_keys=True)
        now = self.clock.now().isoformat()
        deliveries: list[Delivery] = []
        for name, message in sorted(conditions.items()):
            entry = known.setdefault(name, {"since": now, "message": message, "notified": False})
            if not entry["notified"]:
                sent = self._send(name, "firing", message, entry["since"])
                entry["notified"] = sent.delivered
                deliveries.append(sent)
        for name in sorted(set(known) - set(conditions)):
            entry = known[name]
            if entry["notified"]:
                sent = self._send(name, "resolved", entry["message"], entry["since"])
                deliveries.append(sent)
                if not sent.delivered:
                    continue  # keep it: the clearing is announced next time
            del known[name]
        if json.dumps(known, sort_keys=True) != before:  # most minutes nothing changes: no write
            write_state(self.db, ALERTS_KEY, known or None)
        return deliveries

    def _send(self, name: str, status: str, message: str, since: str) -> Delivery:
        headline = "FIRING" if status == "firing" else "RESOLVED"
        body = {
            "text": f"[ragstore] {headline} {name}: {message}",
            "condition": name,
            "status": status,
            "since": since,
            "at": self.clock.now().isoformat(),
        }
        for attempt in range(1, ATTEMPTS + 1):
            try:
                with httpx.Client(timeout=self.timeout_s, transport=self.transport) as client:
                    answer = client.post(self.url, json=body)
                if answer.status_code < 300:
                    return Delivery(name, status, True, attempt)
                problem = f"HTTP {answer.status_code}"
            except httpx.HTTPError as exc:
                problem = type(exc).__name__
            log.warning("alert %s (%s) to %s: attempt %d failed (%s)", name, status, _host(self.url), attempt, problem)
            if attempt < ATTEMPTS:
                self.sleep(BACKOFF_S * 2 ** (attempt - 1))
        return Delivery(name, status, False, ATTEMPTS)


def _host(url: str) -> str:
    """The webhook's host only: its path often holds a secret token (Slack's does)."""
    return urlsplit(url).netloc or "the webhook"
