"""The audit log: append-only, hash-chained rows of who did what to what, and how it ended.

Each row's `row_hash` is SHA-256 over the canonical JSON of its fields and the previous row's hash, and
`sequence` has no gaps, so editing, deleting, inserting or reordering a row breaks the chain at that row.
Rows are appended under a lock (the write transaction's `BEGIN IMMEDIATE` on SQLite, a transaction-scoped
advisory lock on PostgreSQL), so two writers can never both extend the same head and fork the chain.

`append(session, ...)` writes inside the caller's transaction, so a recorded change and its record commit
or roll back together; `record(...)` is its own transaction, for actions that have none (a failed login).
Who acted comes from `security.context.current_call()` unless the caller says.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from ragstore.clock import SYSTEM_CLOCK, Clock
from ragstore.db.engine import Database
from ragstore.db.security_models import AuditLog
from ragstore.secrets_mask import mask_value
from ragstore.security.context import current_call

__all__ = ["GENESIS_HASH", "AuditEntry", "AuditTrail", "Outcome", "lock_chain", "row_hash"]

log = logging.getLogger(__name__)
GENESIS_HASH = "0" * 64
# The PostgreSQL advisory lock that serialises appends ("audit" in ASCII); any constant all processes share.
AUDIT_LOCK_KEY = 0x6175_6469_74


class Outcome:
    SUCCESS = "success"
    FAILURE = "failure"
    DENIED = "denied"


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One row as written (and as `row_hash` reads it)."""

    sequence: int
    created_at: datetime
    actor: str
    action: str
    target: str
    outcome: str
    request_id: str
    client_address: str
    details: dict[str, Any]
    previous_hash: str
    row_hash: str

    @classmethod
    def of(cls, row: AuditLog) -> AuditEntry:
        return cls(
            sequence=int(row.sequence),
            created_at=_utc(row.created_at),
            actor=row.actor,
            action=row.action,
            target=row.target,
            outcome=row.outcome,
            request_id=row.request_id,
            client_address=row.client_address,
            details=dict(row.details or {}),
            previous_hash=row.previous_hash,
            row_hash=row.row_hash,
        )

    def expected_hash(self) -> str:
        return row_hash(
            sequence=self.sequence,
            created_at=self.created_at,
            actor=self.actor,
            action=self.action,
            target=self.target,
            outcome=self.outcome,
            request_id=self.request_id,
            client_address=self.client_address,
            details=self.details,
            previous_hash=self.previous_hash,
        )


def _utc(moment: datetime) -> datetime:
    """SQLite hands datetimes back naive (they were written in UTC)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def row_hash(
    *,
    sequence: int,
    created_at: datetime,
    actor: str,
    action: str,
    target: str,
    outcome: str,
    request_id: str,
    client_address: str,
    details: dict[str, Any],
    previous_hash: str,
) -> str:
    """SHA-256 of the canonical JSON (sorted keys, no spaces, UTF-8) of a row's fields, its predecessor's hash
    included. Times are microsecond ISO-8601 in UTC, which both dialects store exactly."""
    canonical = json.dumps(
        {
            "sequence": sequence,
            "created_at": _utc(created_at).isoformat(timespec="microseconds"),
            "actor": actor,
            "action": action,
            "target": target,
            "outcome": outcome,
            "request_id": request_id,
            "client_address": client_address,
            "details": details,
            "previous_hash": previous_hash,
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def lock_chain(session: Session) -> None:
    """Serialise everyone who reads the chain's head to extend it (appends, checkpoints) until this
    transaction ends: SQLite's write units already hold the database's one write lock (`BEGIN IMMEDIATE`)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": AUDIT_LOCK_KEY})


def _error_text(exc: BaseException) -> str:
    message = getattr(exc, "message", None)
    return message if isinstance(message, str) else f"{type(exc).__name__}: {exc}"


class AuditTrail:
    """Appends to the audit log. Verification and checkpoints build on the same `row_hash`."""

    def __init__(self, db: Database, clock: Clock = SYSTEM_CLOCK) -> None:
        self.db = db
        self.clock = clock

    def record(
        self,
        action: str,
        *,
        target: str = "",
        outcome: str = Outcome.SUCCESS,
        details: dict[str, Any] | None = None,
        actor: str | None = None,
    ) -> AuditEntry:
        """Append one row in a transaction of its own."""
        return self.db.write(
            lambda session: self.append(session, action, target=target, outcome=outcome, details=details, actor=actor)
        )

    @contextmanager
    def recorded(self, action: str, *, target: str = "", **details: Any) -> Iterator[dict[str, Any]]:
        """Record `action` once the block ends: a success (with whatever the block added to the yielded
        details), or a failure with the error, which is then raised on. For long actions with no single
        transaction to join (a rebuild, a migration of the index, a repair)."""
        extra: dict[str, Any] = dict(details)
        try:
            yield extra
        except Exception as exc:
            self.record_failure(action, target=target, error=_error_text(exc), **extra)
            raise
        self.record_quietly(action, target=target, details=extra)

    def record_failure(self, action: str, *, target: str = "", error: str = "", **details: Any) -> None:
        """Record that `action` failed, in its own transaction; never raises (the caller is already failing,
        and its error is the one to report), but logs when even this cannot be written."""
        self.record_quietly(action, target=target, outcome=Outcome.FAILURE, details={"error": error[:500], **details})

    def record_quietly(
        self, action: str, *, target: str = "", outcome: str = Outcome.SUCCESS, details: dict[str, Any] | None = None
    ) -> None:
        """`record`, for an action that has already happened: a failure to write is logged, not raised."""
        try:
            self.record(action, target=target, outcome=outcome, details=details)
        except Exception:
            log.exception("could not record %s on %r in the audit log", action, target)

    def append(
        self,
        session: Session,
        action: str,
        *,
        target: str = "",
        outcome: str = Outcome.SUCCESS,
        details: dict[str, Any] | None = None,
        actor: str | None = None,
    ) -> AuditEntry:
        """Append one row inside the caller's write transaction (it commits or rolls back with the change)."""
        call = current_call()
        lock_chain(session)
        head = session.execute(
            select(AuditLog.sequence, AuditLog.row_hash).order_by(AuditLog.sequence.desc()).limit(1)
        ).first()
        sequence = int(head[0]) + 1 if head else 1
        previous = str(head[1]) if head else GENESIS_HASH
        # Microseconds only: what both dialects store, so the hash computed now is the hash verified later.
        created_at = self.clock.now().astimezone(UTC)
        fields: dict[str, Any] = {
            "sequence": sequence,
            "created_at": created_at,
            "actor": (actor or call.principal.actor)[:200],
            "action": action[:64],
            "target": target[:500],
            "outcome": outcome,
            "request_id": call.request_id[:64],
            "client_address": call.client_address[:64],
            "details": json.loads(json.dumps(mask_value(details or {}), default=str)),
            "previous_hash": previous,
        }
        entry = AuditEntry(**fields, row_hash=row_hash(**fields))
        session.add(AuditLog(**fields, row_hash=entry.row_hash))
        session.flush()
        return entry
