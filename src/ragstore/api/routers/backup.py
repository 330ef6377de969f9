"""Administration of backups (admin only, once API keys exist): trigger, status, history, verify, restore.

Restores go only below the restore root and to the configured PostgreSQL server (`backup.targets`), and no
answer or error body names an absolute server path or free-space figure (`backup.public`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from ragstore.api.deps import get_store
from ragstore.api.errors import DOWN, INVALID, JSON_BODY, error_responses
from ragstore.api.permissions import require
from ragstore.backup.public import hide_paths, hide_paths_in_error
from ragstore.errors import InvalidInput, RagstoreError
from ragstore.schemas import (
    BackupRunInfo,
    BackupStarted,
    BackupStatus,
    BackupSummary,
    ReadinessReport,
    RestoreReport,
    VerifyResult,
)
from ragstore.security.principal import Role
from ragstore.service import RagStore

router = APIRouter(prefix="/admin/backup", tags=["admin"], dependencies=[Depends(require(Role.ADMIN))])

BUSY = (409, "Another backup, verify, restore or prune is running; nothing was started.")
UNREADABLE = (422, "The repository cannot be read: the key is missing or wrong, or a manifest is damaged.")
NO_BACKUP = (404, "No backup repository yet, or no backup with this id.")
FAILED = (500, "The environment failed (a missing tool such as pg_dump, a file changed while read); see the message.")
NO_SPACE = (507, "A disk (staging, repository or target) is full; nothing live was changed.")
# A backup whose files fail their checks is refused like bad input (ragstore.backup.errors).
DAMAGED = (422, "A parameter or the body is not valid, the key is wrong, or the backup is damaged (the message says).")
BACKUP_ID_PATTERN = r"^[0-9A-Za-z][0-9A-Za-z_-]{0,63}$"  # as `backup.targets.BACKUP_ID`


@contextlib.contextmanager
def _no_server_paths(store: RagStore) -> Iterator[None]:
    """Errors leave with their category and code, their messages with server paths replaced by labels."""
    try:
        yield
    except RagstoreError as exc:
        raise hide_paths_in_error(exc, store.settings) from None


class TriggerRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["full", "incremental", "snapshot"] = "incremental"
    note: str | None = Field(None, max_length=1000)


class VerifyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    backup_id: str | None = Field(
        None, min_length=1, max_length=64, pattern=BACKUP_ID_PATTERN, description="Default: the newest backup."
    )


class RestoreRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    backup_id: str = Field(..., min_length=1, max_length=64, pattern=BACKUP_ID_PATTERN)
    to: str | None = Field(
        None,
        min_length=1,
        max_length=4096,
        description="A new or empty folder below the restore root (RAGSTORE_RESTORE_ROOT, default "
        "`<data dir>/restores`; a relative path is taken from there), or a postgresql:// URL naming a new "
        "database on the configured server. Required: a running server never replaces its own live store "
        "(stop it and run `ragstore backup restore ID`).",
    )


@router.post(
    "/trigger",
    status_code=202,
    response_model=BackupStarted,
    summary="Start a backup in the background; follow it in /status",
    responses=error_responses(*JSON_BODY, BUSY, FAILED, DOWN, NO_SPACE),
)
def trigger(body: TriggerRequest | None = None, store: RagStore = Depends(get_store)) -> BackupStarted:
    request = body or TriggerRequest()
    with _no_server_paths(store):
        return store.backups.start_in_background(request.kind, note=request.note)


@router.get(
    "/status",
    response_model=BackupStatus,
    summary="What is running now, the newest backup, the schedule and the retention policy",
    responses=error_responses(UNREADABLE, FAILED, DOWN),
)
def status(store: RagStore = Depends(get_store)) -> BackupStatus:
    with _no_server_paths(store):
        return store.backups.status()


@router.get(
    "/history",
    response_model=list[BackupRunInfo],
    summary="Every backup, verify, restore and prune run, newest first (backup_runs)",
    responses=error_responses(INVALID, DOWN),
)
def history(limit: int = Query(50, ge=1, le=1000), store: RagStore = Depends(get_store)) -> list[BackupRunInfo]:
    return store.backups.history(limit)


@router.get(
    "/list",
    response_model=list[BackupSummary],
    summary="The complete backups in the repository, oldest first",
    responses=error_responses(NO_BACKUP, UNREADABLE, FAILED, DOWN),
)
def listing(store: RagStore = Depends(get_store)) -> list[BackupSummary]:
    with _no_server_paths(store):
        return store.backups.list()


@router.post(
    "/verify",
    response_model=VerifyResult,
    summary="Restore a backup into a temporary folder and check it against its manifest",
    responses=error_responses(*JSON_BODY[:3], DAMAGED, NO_BACKUP, BUSY, FAILED, DOWN, NO_SPACE),
)
def verify(body: VerifyRequest | None = None, store: RagStore = Depends(get_store)) -> VerifyResult:
    with _no_server_paths(store):
        return store.backups.verify(body.backup_id if body else None, trigger="api")[0]


@router.post(
    "/restore",
    response_model=RestoreReport,
    summary="Restore a backup into a new folder or database beside the live store",
    responses=error_responses(
        *JSON_BODY[:3],
        (
            422,
            "The body is not valid; the backup is damaged or its key is wrong; or the target is refused: outside "
            "the restore root, through a symlink, a file, not empty, the live store, too long, unwritable, or "
            "a database not on the configured server (the message names the problem).",
        ),
        NO_BACKUP,
        BUSY,
        FAILED,
        DOWN,
        NO_SPACE,
    ),
)
def restore(body: RestoreRequest, store: RagStore = Depends(get_store)) -> RestoreReport:
    if body.to is None:
        raise InvalidInput(
            "to is required: a running server never replaces its own live store (other processes would go on "
            "writing to the old files); stop the server and run `ragstore backup restore ID`, or restore beside "
            "it with to"
        )
    with _no_server_paths(store):
        report = store.backups.restore_copy(body.backup_id, body.to)
    hide = store.settings
    return report.model_copy(
        update={"target": hide_paths(report.target, hide), "data_dir": hide_paths(report.data_dir, hide)}
    )


@router.get(
    "/dr",
    response_model=ReadinessReport,
    summary="Disaster-recovery readiness (as `ragstore dr report`, without server paths or free space)",
    responses=error_responses(UNREADABLE, FAILED, DOWN),
)
def dr(store: RagStore = Depends(get_store)) -> ReadinessReport:
    with _no_server_paths(store):
        return store.backups.dr_report(public=True)
