"""The backups sub-facade, `store.backups`: make, list, verify, prune and restore beside, and readiness.

A restore over the live store cannot run inside an open store, so the facade's own restore (which opens the
restored copy and checks it) is handed in by the service layer rather than imported from it.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable
from dataclasses import dataclass

from ragstore.backup.manager import BackupManager
from ragstore.backup.readiness import readiness_report
from ragstore.backup.runs import RunLog
from ragstore.config import Settings
from ragstore.errors import InvalidInput
from ragstore.schemas import (
    BackupDetail,
    BackupRunInfo,
    BackupStarted,
    BackupStatus,
    BackupSummary,
    PruneReport,
    ReadinessReport,
    RestoreReport,
    VerifyResult,
)

__all__ = ["BackupService", "RestoreFn"]

RestoreFn = Callable[[Settings, str, str], RestoreReport]


@dataclass(kw_only=True, slots=True)
class BackupService:
    """Its fields are the parts it works with, handed in by `wiring.build`."""

    manager: BackupManager
    restore: RestoreFn

    @property
    def settings(self) -> Settings:
        return self.manager.settings

    @property
    def runs(self) -> RunLog:
        return self.manager.runs

    def create(
        self, kind: str = "incremental", *, note: str | None = None, trigger: str = "cli", slot: str | None = None
    ) -> BackupSummary | None:
        """One consistent backup of the database and (for file-based indexes) the vector index.

        `incremental` stores only blocks the repository lacks, `full` writes every block anew, `snapshot`
        is the database alone. None when `slot` was taken by another process (scheduled runs).
        """
        return self.manager.create(kind, note=note, trigger=trigger, slot=slot)

    def start_in_background(self, kind: str, *, note: str | None = None, trigger: str = "api") -> BackupStarted:
        """Start a backup on a thread (the API answers 202 at once); its progress shows in `status`."""
        return self.manager.start_in_background(kind, note=note, trigger=trigger)

    def list(self) -> builtins.list[BackupSummary]:
        return self.manager.summaries()

    def show(self, backup_id: str) -> BackupDetail:
        return self.manager.show(backup_id)

    def verify(
        self, backup_id: str | None = None, *, every: bool = False, trigger: str = "cli"
    ) -> builtins.list[VerifyResult]:
        return self.manager.verify(backup_id, every=every, trigger=trigger)

    def prune(self, *, dry_run: bool = False, trigger: str = "cli") -> PruneReport:
        return self.manager.prune(dry_run=dry_run, trigger=trigger)

    def status(self) -> BackupStatus:
        return self.manager.status()

    def history(self, limit: int = 50) -> builtins.list[BackupRunInfo]:
        return self.manager.history(limit)

    def restore_copy(self, backup_id: str, to: str) -> RestoreReport:
        """Restore a backup beside this (open, live) store: into a new folder or database, never over it."""
        if not to or not isinstance(to, str):
            raise InvalidInput("to: a folder (SQLite) or postgresql:// URL to restore into is required")
        return self.restore(self.manager.settings, backup_id, to)

    def dr_report(self, *, public: bool = False) -> ReadinessReport:
        """`public` for the HTTP API: no absolute server paths or free-space figures (the CLI shows them)."""
        return readiness_report(self.manager, public=public)
