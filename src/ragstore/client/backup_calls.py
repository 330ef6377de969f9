"""The backup administration routes (admin only) as calls and plans, shared by `Backups` and `AsyncBackups`.

The API starts a backup in the background (202) and reports it in its run history; `create`, which the
facade runs to its end, triggers one and follows that run until it is over, so both faces return the
finished backup's summary.
"""

from __future__ import annotations

from typing import Any

import httpx

from ragstore.client.calls import Call, Pause, Plan, parsed, parsed_list
from ragstore.errors import NotFound, OperationFailed, Unavailable
from ragstore.schemas import (
    BackupRunInfo,
    BackupStarted,
    BackupStatus,
    BackupSummary,
    ReadinessReport,
    RestoreReport,
    VerifyResult,
)

__all__ = ["create", "dr", "history", "listing", "restore", "start", "status", "verify"]

PATH = "/admin/backup"
LONG_S = 3600.0  # a verify or a restore reads the whole backup: a request may take this long
POLL_FIRST_S, POLL_MAX_S, WAIT_MAX_S = 0.2, 2.0, 6 * 3600.0


def start(kind: str, note: str | None) -> Call[BackupStarted]:
    body: dict[str, Any] = {"kind": kind} | ({"note": note} if note is not None else {})
    return Call("POST", f"{PATH}/trigger", parsed(BackupStarted), json=body)


def status() -> Call[BackupStatus]:
    return Call("GET", f"{PATH}/status", parsed(BackupStatus), idempotent=True)


def history(limit: int) -> Call[list[BackupRunInfo]]:
    return Call("GET", f"{PATH}/history", parsed_list(BackupRunInfo), params={"limit": limit}, idempotent=True)


def listing() -> Call[list[BackupSummary]]:
    return Call("GET", f"{PATH}/list", parsed_list(BackupSummary), idempotent=True)


def _verified(response: httpx.Response) -> list[VerifyResult]:
    return [VerifyResult.model_validate(response.json())]


def verify_one(backup_id: str | None) -> Call[list[VerifyResult]]:
    body = {"backup_id": backup_id} if backup_id is not None else None
    return Call("POST", f"{PATH}/verify", _verified, json=body, idempotent=True, timeout=LONG_S)


def verify(backup_id: str | None, every: bool) -> Plan[list[VerifyResult]]:
    """One backup (default: the newest), or with `every` each backup of the repository in turn."""
    results: list[VerifyResult] = []
    if not every:
        results = yield verify_one(backup_id)
        return results
    backups: list[BackupSummary] = yield listing()
    for backup in backups:
        results += yield verify_one(backup.id)
    return results


def restore(backup_id: str, to: str) -> Call[RestoreReport]:
    body = {"backup_id": backup_id, "to": to}
    return Call("POST", f"{PATH}/restore", parsed(RestoreReport), json=body, timeout=LONG_S)


def dr() -> Call[ReadinessReport]:
    return Call("GET", f"{PATH}/dr", parsed(ReadinessReport), idempotent=True)


def _run(runs: list[BackupRunInfo], run_id: int) -> BackupRunInfo | None:
    return next((r for r in runs if r.id == run_id), None)


def create(kind: str, note: str | None) -> Plan[BackupSummary]:
    """Trigger a backup and follow its run to the end: the new backup's summary, or the run's error."""
    started: BackupStarted = yield start(kind, note)
    if started.running is None:  # over before the answer was written: the newest backup is this one
        current: BackupStatus = yield status()
        if current.latest is None:
            raise OperationFailed(f"the {kind} backup ended without a backup; see GET {PATH}/history")
        return current.latest
    run_id, waited, pause = started.running.run_id, 0.0, POLL_FIRST_S
    while True:
        run = _run((yield history(50)), run_id)
        if run is not None and run.state != "running":
            break
        if waited >= WAIT_MAX_S:
            raise Unavailable(f"backup run {run_id} has not finished after {waited:.0f} s; see GET {PATH}/status")
        yield Pause(pause)
        waited += pause
        pause = min(pause * 2, POLL_MAX_S)
    if run.state != "complete" or run.backup_id is None:
        raise OperationFailed(f"backup run {run_id} {run.state}: {run.error or 'no error recorded'}")
    backups: list[BackupSummary] = yield listing()
    made = next((b for b in backups if b.id == run.backup_id), None)
    if made is None:
        raise NotFound(f"backup {run.backup_id} finished but is not in the repository's list")
    return made
