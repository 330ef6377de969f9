"""Administration: the consistency checker's runs, reports and repairs (admin only, once API keys exist).

GETs only read stored reports; a check (which stores a new report) is a POST, so a crawler, a prefetching
browser or a retried GET never starts one.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from ragstore.api.deps import get_store
from ragstore.api.errors import DOWN, INVALID, JSON_BODY, error_responses
from ragstore.api.permissions import authorize, require
from ragstore.errors import InvalidInput
from ragstore.schemas import ConsistencyReport, ConsistencyRunSummary
from ragstore.schemas.core import INT64_MAX, StorableStr
from ragstore.security.principal import Principal, Role
from ragstore.service import RagStore

router = APIRouter(prefix="/admin/consistency", tags=["admin"], dependencies=[Depends(require(Role.ADMIN))])

INVALID_REQUEST = INVALID
UNKNOWN_COLLECTION = (404, "The collection named does not exist.")
INDEX_DOWN = (503, "The vector index or the database cannot serve now; no report was stored.")


class CheckRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    collection: StorableStr | None = Field(None, min_length=1, max_length=128, description="Default: every collection.")


RepairRequest = CheckRequest  # the same body; the name the repair route has always documented


@router.get(
    "",
    response_model=ConsistencyReport,
    summary="The newest stored report (reads only: POST /admin/consistency runs a check)",
    responses=error_responses((404, "No check has finished yet."), INVALID_REQUEST, DOWN),
)
def latest_report(
    latest: bool = Query(
        True, deprecated=True, description="Kept for old clients: GET always returns the newest stored report."
    ),
    collection: str | None = Query(
        None, deprecated=True, description="Refused: a check over one collection is POST /admin/consistency."
    ),
    store: RagStore = Depends(get_store),
) -> ConsistencyReport:
    if not latest or collection is not None:
        # These once made GET run a check; answering with an older report instead would mislead silently.
        raise InvalidInput(
            "GET /admin/consistency only reads the newest stored report; to run a check, "
            'POST /admin/consistency (body {"collection": NAME} for one collection)'
        )
    return store.consistency.report()


@router.post(
    "",
    response_model=ConsistencyReport,
    summary="Run a consistency check now (no repair), store its report and return it",
    responses=error_responses(*JSON_BODY, UNKNOWN_COLLECTION, INDEX_DOWN),
)
def check(
    body: CheckRequest | None = None,
    store: RagStore = Depends(get_store),
    principal: Principal = Depends(require(Role.ADMIN)),
) -> ConsistencyReport:
    if body is not None and body.collection is not None:
        authorize(principal, Role.ADMIN, body.collection)
    report = store.consistency.check(body.collection if body else None, trigger="api")
    assert report is not None  # only scheduled runs name a slot
    return report


@router.post(
    "/repair",
    response_model=ConsistencyReport,
    summary="Run a check and repair the safe kinds through the outbox",
    responses=error_responses(*JSON_BODY, UNKNOWN_COLLECTION, INDEX_DOWN),
)
def repair(
    body: RepairRequest | None = None,
    store: RagStore = Depends(get_store),
    principal: Principal = Depends(require(Role.ADMIN)),
) -> ConsistencyReport:
    if body is not None and body.collection is not None:
        authorize(principal, Role.ADMIN, body.collection)
    report = store.consistency.check(body.collection if body else None, repair=True, trigger="api")
    assert report is not None
    return report


@router.get(
    "/history",
    response_model=list[ConsistencyRunSummary],
    summary="Past runs, newest first: when, how long, counts by kind",
    responses=error_responses(INVALID_REQUEST, DOWN),
)
def history(limit: int = Query(20, ge=1, le=1000), store: RagStore = Depends(get_store)) -> list[ConsistencyRunSummary]:
    return store.consistency.history(limit)


# `:int`, so that a path of another route (GET /admin/consistency/repair) is a 405, not a 422 for a bad id.
@router.get(
    "/{report_id:int}",
    response_model=ConsistencyReport,
    summary="One stored report with its findings and repairs",
    responses=error_responses((404, "No report has this id."), INVALID_REQUEST, DOWN),
)
def report(report_id: int = Path(ge=1, le=INT64_MAX), store: RagStore = Depends(get_store)) -> ConsistencyReport:
    return store.consistency.report(report_id)
