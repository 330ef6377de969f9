from __future__ import annotations

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse

from ragstore.api.deps import get_store
from ragstore.api.errors import DOWN, INVALID, error_responses
from ragstore.api.permissions import public, require
from ragstore.ops.history import MAX_HOURS
from ragstore.schemas import DatabaseHealth, HealthHistory, HealthReport
from ragstore.security.principal import Role
from ragstore.service import RagStore

router = APIRouter(tags=["health"])


# Liveness is public: load balancers, orchestrators and the compose healthcheck poll it without a key, and
# it says only whether each component serves. The database's details (dialect, schema revision, the
# driver's error) are for monitoring keys (the metrics role) and admins.
@router.get(
    "/health",
    dependencies=[Depends(public())],
    summary="Overall health: ok, degraded (serving, something behind) or down",
    responses={
        200: {"model": HealthReport, "description": "Serving: ok, or degraded (something is behind)"},
        503: {"model": HealthReport, "description": "A component is down"},
    },
)
def health(store: RagStore = Depends(get_store)) -> JSONResponse:
    report = store.ops.health()
    return JSONResponse(report.to_json(), status_code=503 if report.status == "down" else 200)


@router.get(
    "/health/database",
    dependencies=[Depends(require(Role.METRICS))],
    summary="Database reachability, dialect, schema revision and latency",
    responses={
        200: {"model": DatabaseHealth, "description": "The database answers"},
        503: {"model": DatabaseHealth, "description": "The database does not answer; `error` says why"},
    },
)
def database_health(store: RagStore = Depends(get_store)) -> JSONResponse:
    report = store.ops.database_health()
    body = report.model_dump(mode="json", exclude_none=True)
    return JSONResponse(body, status_code=200 if report.status == "ok" else 503)


@router.get(
    "/health/history",
    dependencies=[Depends(require(Role.METRICS))],
    summary="Health snapshots of the last hours (one a minute by default), oldest first",
    response_model=HealthHistory,
    responses=error_responses(
        (401, "No API key or session, or one that proves nothing."),
        (403, "The caller holds neither the metrics nor the admin role."),
        INVALID,
        DOWN,
    ),
)
def health_history(
    hours: int = Query(24, ge=1, le=MAX_HOURS, description="How far back, in hours."),
    store: RagStore = Depends(get_store),
) -> HealthHistory:
    return store.ops.history(hours)
