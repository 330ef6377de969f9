"""`client.backups`: backup administration over HTTP (admin keys), as `store.backups`.

`show` (a manifest) and `prune` have no route (`LocalOnly`); `trigger`, `slot` and `every` behave as the
facade's, except that the server records its own trigger ("api").
"""

from __future__ import annotations

import builtins

from ragstore.client import backup_calls as calls
from ragstore.client.errors import LocalOnly
from ragstore.client.http import AsyncHttp, SyncHttp
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

__all__ = ["AsyncBackups", "Backups"]


def _local_only(what: str) -> LocalOnly:
    return LocalOnly(f"backups.{what} has no HTTP route: it needs a local store")


class Backups:
    def __init__(self, http: SyncHttp) -> None:
        self._http = http

    def create(
        self, kind: str = "incremental", *, note: str | None = None, trigger: str = "cli", slot: str | None = None
    ) -> BackupSummary:
        """Start a backup on the server and wait for it to finish."""
        return self._http.run(calls.create(kind, note))

    def start_in_background(self, kind: str, *, note: str | None = None, trigger: str = "api") -> BackupStarted:
        return self._http.run(calls.start(kind, note))

    start = start_in_background

    def list(self) -> builtins.list[BackupSummary]:
        return self._http.run(calls.listing())

    def status(self) -> BackupStatus:
        return self._http.run(calls.status())

    def history(self, limit: int = 50) -> builtins.list[BackupRunInfo]:
        return self._http.run(calls.history(limit))

    def verify(
        self, backup_id: str | None = None, *, every: bool = False, trigger: str = "cli"
    ) -> builtins.list[VerifyResult]:
        return self._http.run(calls.verify(backup_id, every))

    def restore_copy(self, backup_id: str, to: str) -> RestoreReport:
        return self._http.run(calls.restore(backup_id, to))

    def dr_report(self, *, public: bool = False) -> ReadinessReport:
        """The server's report is always the public one (no server paths or free space), whatever `public` says."""
        return self._http.run(calls.dr())

    def show(self, backup_id: str) -> BackupDetail:
        raise _local_only("show")

    def prune(self, *, dry_run: bool = False, trigger: str = "cli") -> PruneReport:
        raise _local_only("prune")


class AsyncBackups:
    def __init__(self, http: AsyncHttp) -> None:
        self._http = http

    async def create(
        self, kind: str = "incremental", *, note: str | None = None, trigger: str = "cli", slot: str | None = None
    ) -> BackupSummary:
        return await self._http.run(calls.create(kind, note))

    async def start_in_background(self, kind: str, *, note: str | None = None, trigger: str = "api") -> BackupStarted:
        return await self._http.run(calls.start(kind, note))

    start = start_in_background

    async def list(self) -> builtins.list[BackupSummary]:
        return await self._http.run(calls.listing())

    async def status(self) -> BackupStatus:
        return await self._http.run(calls.status())

    async def history(self, limit: int = 50) -> builtins.list[BackupRunInfo]:
        return await self._http.run(calls.history(limit))

    async def verify(
        self, backup_id: str | None = None, *, every: bool = False, trigger: str = "cli"
    ) -> builtins.list[VerifyResult]:
        return await self._http.run(calls.verify(backup_id, every))

    async def restore_copy(self, backup_id: str, to: str) -> RestoreReport:
        return await self._http.run(calls.restore(backup_id, to))

    async def dr_report(self, *, public: bool = False) -> ReadinessReport:
        return await self._http.run(calls.dr())

    async def show(self, backup_id: str) -> BackupDetail:
        raise _local_only("show")

    async def prune(self, *, dry_run: bool = False, trigger: str = "cli") -> PruneReport:
        raise _local_only("prune")
