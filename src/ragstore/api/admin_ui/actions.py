"""The JSON actions behind the admin pages' buttons that the API had no route for under /admin: maintenance
runs, the outbox's and the job queue's dead letters, verifying the audit log and revoking a key.

They live under /admin because the page's session cookie is scoped to that path (admin_login.py): a button
can only call a route the cookie reaches. Each needs the admin role, from a key as well as from the page
(whose POSTs carry the session's CSRF token); each action that changes something is an audit record.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Path, Query
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from ragstore.api.deps import get_store
from ragstore.api.errors import DOWN, INVALID, JSON_BODY, error_responses
from ragstore.api.permissions import require
from ragstore.runtime.maintenance import maintenance_history, maintenance_run, run_maintenance
from ragstore.schemas import (
    ApiKeyInfo,
    AuditVerification,
    JobInfo,
    MaintenanceRunInfo,
    OutboxStatus,
    RetryReport,
)
from ragstore.schemas.core import INT64_MAX
from ragstore.security.principal import Role
from ragstore.service import RagStore

__all__ = ["router"]

router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[Depends(require(Role.ADMIN))])

NO_JOB = (404, "No job has this id.")
NOT_DEAD = (409, "The job is not dead (only a dead job is queued again).")
NO_KEY = (404, "No API key has this id.")
MAX_RUNS = 1000


class MaintenanceRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dry_run: bool = Field(False, description="Count what would be done; change nothing.")


@router.get(
    "/maintenance",
    response_model=list[MaintenanceRunInfo],
    summary="Maintenance runs (optimize, cleanup), newest first, with what each step did",
    responses=error_responses(INVALID, DOWN),
)
def maintenance_runs(
    limit: int = Query(50, ge=1, le=MAX_RUNS, description="How many runs, newest first."),
    store: RagStore = Depends(get_store),
) -> list[MaintenanceRunInfo]:
    return maintenance_history(store.db, limit)


@router.post(
    "/maintenance/{action}",
    response_model=MaintenanceRunInfo,
    summary="Run `maintenance optimize` or `cleanup` now (recorded in the run ledger and audited)",
    responses=error_responses(*JSON_BODY, DOWN),
)
def run_now(
    action: Literal["optimize", "cleanup"],
    body: MaintenanceRequest | None = None,
    store: RagStore = Depends(get_store),
) -> MaintenanceRunInfo:
    result = run_maintenance(store, action, dry_run=body.dry_run if body else False, trigger="api")
    assert result is not None  # no schedule slot: never refused
    run = maintenance_run(store.db, result.run_id)
    assert run is not None
    return run


@router.get(
    "/outbox",
    response_model=OutboxStatus,
    summary="The outbox: pending and dead operations, the oldest one's wait, the newest dead ones",
    responses=error_responses(DOWN),
)
def outbox(store: RagStore = Depends(get_store)) -> OutboxStatus:
    return store.queues.outbox()


@router.post(
    "/outbox/retry",
    response_model=RetryReport,
    summary="Queue every dead outbox operation again (after fixing what made them fail)",
    responses=error_responses(*JSON_BODY, DOWN),
)
def retry_outbox(store: RagStore = Depends(get_store)) -> RetryReport:
    return store.queues.retry_dead_operations()


@router.post(
    "/jobs/{job_id}/retry",
    response_model=JobInfo,
    summary="Queue a dead job again, its attempts reset",
    responses=error_responses(*JSON_BODY, NO_JOB, NOT_DEAD, DOWN),
)
def retry_job(
    job_id: int = Path(ge=1, le=INT64_MAX, description="The job's id."), store: RagStore = Depends(get_store)
) -> JobInfo:
    store.queues.retry_dead_job(job_id)
    return store.jobs.get(job_id)


@router.post(
    "/audit/verify",
    response_model=AuditVerification,
    summary="Verify the audit log's hash chain and checkpoints (as POST /v1/audit/verify)",
    responses=error_responses(*JSON_BODY, DOWN),
)
def verify_audit(store: RagStore = Depends(get_store)) -> AuditVerification:
    return store.audit.verify()


@router.post(
    "/keys/{key}/revoke",
    response_model=ApiKeyInfo,
    summary="Revoke an API key now (as POST /v1/keys/{key}/revoke)",
    responses=error_responses(*JSON_BODY, NO_KEY, DOWN),
)
async def revoke_key(
    key: int = Path(ge=1, le=INT64_MAX, description="The key's number (`id` in its listing)."),
    store: RagStore = Depends(get_store),
) -> ApiKeyInfo:
    return await run_in_threadpool(store.keys.revoke, key)
