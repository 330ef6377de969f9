"""The store's log of backup work (`backup_runs`): every attempt, including those that failed or died."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ragstore.db.engine import Database
from ragstore.db.models import BackupRun

__all__ = ["RunLog"]


class RunLog:
    def __init__(self, db: Database) -> None:
        self.db = db

    def start(
        self,
        action: str,
        *,
        kind: str | None = None,
        trigger: str = "cli",
        slot: str | None = None,
        note: str | None = None,
        backup_id: str | None = None,
    ) -> int | None:
        """A new running entry; None when `slot` is taken (another process runs this scheduled job)."""

        def unit(s: Session) -> int:
            run = BackupRun(
                action=action,
                kind=kind,
                trigger=trigger,
                slot=slot,
                note=note,
                backup_id=backup_id,
                state="running",
                details={},
            )
            s.add(run)
            s.flush()
            return int(run.id)

        with contextlib.suppress(IntegrityError):
            return self.db.write(unit)
        return None

    def finish(
        self,
        run_id: int,
        *,
        state: str,
        duration_ms: float,
        size_bytes: int | None = None,
        backup_id: str | None = None,
        details: dict[str, Any] | None = None,
        error: str | None = None,
    ) -> None:
        def unit(s: Session) -> None:
            run = s.get(BackupRun, run_id)
            if run is None:
                return
            run.state = state
            run.finished_at = datetime.now(UTC)
            run.duration_ms = round(duration_ms, 1)
            run.size_bytes = size_bytes
            run.backup_id = backup_id or run.backup_id
            run.details = details or {}
            run.error = error

        self.db.write(unit)

    def attach(self, run_id: int, backup_id: str) -> None:
        """Name the backup a running entry makes, before its snapshot, so the snapshot's own log names it."""

        def unit(s: Session) -> None:
            run = s.get(BackupRun, run_id)
            if run is not None:
                run.backup_id = backup_id

        self.db.write(unit)

    def record(self, action: str, *, state: str, duration_ms: float, **fields: Any) -> int:
        """An entry for something already done (a restore is logged in the database it produced)."""
        run_id = self.start(action, kind=fields.pop("kind", None), backup_id=fields.get("backup_id"))
        assert run_id is not None  # no slot, so never refused
        self.finish(run_id, state=state, duration_ms=duration_ms, **fields)
        return run_id

    def mark_interrupted(self, *, keep: int | None = None) -> int:
        """Runs left `running` by a process that died (called while holding the repository lock)."""

        def unit(s: Session) -> int:
            stmt = update(BackupRun).where(BackupRun.state == "running")
            if keep is not None:
                stmt = stmt.where(BackupRun.id != keep)
            result = s.execute(
                stmt.values(state="interrupted", error="the process running it stopped before it finished")
            )
            return int(getattr(result, "rowcount", 0) or 0)

        return self.db.write(unit)

    def history(self, limit: int = 50, *, action: str | None = None) -> list[dict[str, Any]]:
        with self.db.read() as s:
            stmt = select(BackupRun).order_by(BackupRun.id.desc()).limit(limit)
            if action is not None:
                stmt = stmt.where(BackupRun.action == action)
            return [_row(r) for r in s.scalars(stmt)]

    def running(self) -> list[dict[str, Any]]:
        with self.db.read() as s:
            return [_row(r) for r in s.scalars(select(BackupRun).where(BackupRun.state == "running"))]


def _row(r: BackupRun) -> dict[str, Any]:
    return {
        "id": r.id,
        "action": r.action,
        "kind": r.kind,
        "backup_id": r.backup_id,
        "trigger": r.trigger,
        "state": r.state,
        "started_at": r.started_at.isoformat() if r.started_at else None,
        "finished_at": r.finished_at.isoformat() if r.finished_at else None,
        "duration_ms": r.duration_ms,
        "size_bytes": r.size_bytes,
        "note": r.note,
        "error": r.error,
        "details": r.details,
    }
