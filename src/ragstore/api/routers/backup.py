"""Administration of backups (admin only, once API keys exist): trigger, status, history, verify, restore."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from ragstore.api.deps import get_store
from ragstore.api.errors import DOWN, INVALID, JSON_BODY, error_responses
from ragstore.errors import InvalidInput
from ragstore.schemas import (
    BackupRunInfo,
    BackupStarted,
    BackupStatus,
    BackupSummary,
    ReadinessReport,
    RestoreReport,
    VerifyResult,
)
from ragstore.service import RagStore

router = APIRouter(prefix="/admin/backup", tags=["admin"])

BUSY = (409, "Another backup, verify, restore or prune is running; nothing was started.")
UNREADABLE = (422, "The repository cannot be read: the key is missing or wrong, or a manifest is damaged.")
NO_BACKUP = (404, "No backup repository yet, or no backup with this id.")
FAILED = (500, "The environment failed (a missing tool such as pg_dump, a file changed while read); see the message.")
NO_SPACE = (507, "A disk (staging, repository or target) is full; nothing live was changed.")
# A backup whose files fail their checks is refused like bad input (ragstore.backup.errors).
DAMAGED = (422, "A parameter or the body is not valid, the key is wrong, or the backup is damaged (the message says).")


class TriggerRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["full", "incremental", "snapshot"] = "incremental"
    note: str | None = Field(None, max_length=1000)


class VerifyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    backup_id: str | None = Field(None, min_length=1, max_length=64, description="Default: the newest backup.")


class RestoreRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    backup_id: str = Field(..., min_length=1, max_length=64)
    to: str | None = Field(
        None,
        min_length=1,
        max_length=4096,
        description="A new folder (SQLite) or postgresql:// URL. Required: a running server never replaces its "
        "own live store (stop it and run `ragstore backup restore ID`).",
    )


@router.post(
    "/trigger",
    status_code=202,
    response_model=BackupStarted,
    summary="Start a backup in the background; follow it in /status",
    responses=error_responses(*JSON_BODY, BUSY, DOWN),
)
def trigger(body: TriggerRequest | None = None, store: RagStore = Depends(get_store)) -> BackupStarted:
    request = body or TriggerRequest()
    return store.backups.start_in_background(request.kind, note=request.note)


@router.get(
    "/status",
    response_model=BackupStatus,
    summary="What is running now, the newest backup, the schedule and the retention policy",
    responses=error_responses(UNREADABLE, DOWN),
)
def status(store: RagStore = Depends(get_store)) -> BackupStatus:
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
    responses=error_responses(UNREADABLE),
)
def listing(store: RagStore = Depends(get_store)) -> list[BackupSummary]:
    return store.backups.list()


@router.post(
    "/verify",
    response_model=VerifyResult,
    summary="Restore a backup into a temporary folder and check it against its manifest",
    responses=error_responses(*JSON_BODY[:3], DAMAGED, NO_BACKUP, BUSY, FAILED, DOWN, NO_SPACE),
)
def verify(body: VerifyRequest | None = None, store: RagStore = Depends(get_store)) -> VerifyResult:
    return store.backups.verify(body.backup_id if body else None, trigger="api")[0]


@router.post(
    "/restore",
    response_model=RestoreReport,
    summary="Restore a backup into a new folder or database beside the live store",
    responses=error_responses(*JSON_BODY[:3], DAMAGED, NO_BACKUP, BUSY, FAILED, DOWN, NO_SPACE),
)
def restore(body: RestoreRequest, store: RagStore = Depends(get_store)) -> RestoreReport:
    if body.to is None:
        raise InvalidInput(
            "to is required: a running server never replaces its own live store (other processes would go on "
            "writing to the old files); stop the server and run `ragstore backup restore ID`, or restore beside "
            "it with to"
        )
    return store.backups.restore_copy(body.backup_id, body.to)


@router.get(
    "/dr",
    response_model=ReadinessReport,
    summary="Disaster-recovery readiness (as `ragstore dr report`)",
    responses=error_responses(DOWN),
)
def dr(store: RagStore = Depends(get_store)) -> ReadinessReport:
    return store.backups.dr_report()
