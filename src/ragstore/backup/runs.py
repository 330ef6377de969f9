"""The store's log of backup work (`backup_runs`): every attempt, including those that failed or died.

What a run record is, and how one starts, ends or is found interrupted, is the run ledger's (db/runs.py);
this module adds what is particular to backups: the action, kind, backup id, size and note of a run.
"""

from __future__ import annotations

from typing import Any

from ragstore.db.engine import Database
from ragstore.db.models import BackupRun
from ragstore.db.runs import RunLedger, RunState
from ragstore.schemas import BackupRunInfo

__all__ = ["RunLog"]


class RunLog:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.ledger = RunLedger(db, BackupRun)

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
        return self.ledger.start(trigger=trigger, slot=slot, action=action, kind=kind, note=note, backup_id=backup_id)

    def finish(self, run_id: int, *, state: RunState, duration_ms: float, **fields: Any) -> None:
        """Close a running entry (the ledger's `finish`: `details`, `error`, and this table's `size_bytes`
        and `backup_id`; a field left out or given as None keeps its value)."""
        self.ledger.finish(run_id, state=state, duration_ms=duration_ms, **fields)

    def attach(self, run_id: int, backup_id: str) -> None:
        """Name the backup a running entry makes, before its snapshot, so the snapshot's own log names it."""
        self.ledger.update(run_id, backup_id=backup_id)

    def record(self, action: str, *, state: RunState, duration_ms: float, **fields: Any) -> int:
        """An entry for something already done (a restore is logged in the database it produced)."""
        return self.ledger.record(trigger="cli", state=state, duration_ms=duration_ms, action=action, **fields)

    def mark_interrupted(self, *, keep: int | None = None) -> int:
        """Runs left `running` by a process that died (called while holding the repository lock)."""
        return self.ledger.mark_interrupted(keep=keep)

    def history(self, limit: int = 50, *, action: str | None = None) -> list[BackupRunInfo]:
        where = [BackupRun.action == action] if action is not None else []
        return self.ledger.history(_row, limit=limit, where=where)

    def running(self) -> list[BackupRunInfo]:
        return self.ledger.running(_row)


def _row(r: BackupRun) -> BackupRunInfo:
    return BackupRunInfo.model_validate(r)
