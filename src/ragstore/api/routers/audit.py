"""The audit log over HTTP, for admins: list its rows (bounded), verify the chain and its checkpoints.

Verification reads the whole log, so it is a POST: a crawler or a prefetching browser never starts one.
"""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Depends, Query

from ragstore.api.deps import get_store
from ragstore.api.errors import DOWN, INVALID, error_responses
from ragstore.api.permissions import require
from ragstore.schemas import AuditEntryInfo, AuditVerification
from ragstore.security.audit_service import MAX_LIST
from ragstore.security.principal import Role
from ragstore.service import RagStore

router = APIRouter(prefix="/v1/audit", tags=["audit"])

UNAUTHENTICATED = (401, "No API key or login was given, or it proves nothing (expired, revoked, unknown).")
NOT_ADMIN = (403, "The caller does not hold the admin role.")
LIMITED = (429, "Too many requests: retry after the Retry-After header's seconds.")


@router.get(
    "",
    response_model=list[AuditEntryInfo],
    summary="Audit rows, newest first, filtered by actor, action (`key.*` for a kind) and time",
    responses=error_responses(UNAUTHENTICATED, NOT_ADMIN, INVALID, LIMITED, DOWN),
)
def list_audit(
    actor: str | None = Query(None, max_length=200, description="Only this actor (key:ID, user:ID, cli:NAME)."),
    action: str | None = Query(None, max_length=64, description="Only this action, or `kind.*`."),
    since: datetime | None = Query(None, description="Only rows from this time on (ISO 8601)."),
    limit: int = Query(100, ge=1, le=MAX_LIST, description="How many rows, newest first."),
    store: RagStore = Depends(get_store),
    _: object = Depends(require(Role.ADMIN)),
) -> list[AuditEntryInfo]:
    return store.audit.list(actor=actor, action=action, since=since, limit=limit)


@router.post(
    "/verify",
    response_model=AuditVerification,
    summary="Verify the hash chain and the signed checkpoints (200 either way: `ok` and `first_bad_sequence` say)",
    responses=error_responses(UNAUTHENTICATED, NOT_ADMIN, LIMITED, DOWN),
)
def verify_audit(store: RagStore = Depends(get_store), _: object = Depends(require(Role.ADMIN))) -> AuditVerification:
    return store.audit.verify()
