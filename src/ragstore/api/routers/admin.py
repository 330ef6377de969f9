"""Administration: the consistency checker's runs, reports and repairs (admin only, once API keys exist)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from ragstore.api.deps import get_store
from ragstore.service import RagStore

router = APIRouter(prefix="/admin/consistency", tags=["admin"])


class RepairRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    collection: str | None = Field(None, min_length=1, max_length=128, description="Default: every collection.")


@router.get("", summary="Run a consistency check now (no repair) and return its report")
def check(
    collection: str | None = Query(None, min_length=1, max_length=128),
    latest: bool = Query(False, description="Return the newest stored report instead of running a check."),
    store: RagStore = Depends(get_store),
) -> dict[str, Any]:
    if latest:
        return store.consistency.report()
    report = store.consistency.check(collection, trigger="api")
    assert report is not None  # only scheduled runs name a slot
    return report


@router.post("/repair", summary="Run a check and repair the safe kinds through the outbox")
def repair(body: RepairRequest | None = None, store: RagStore = Depends(get_store)) -> dict[str, Any]:
    report = store.consistency.check(body.collection if body else None, repair=True, trigger="api")
    assert report is not None
    return report


@router.get("/history", summary="Past runs, newest first: when, how long, counts by kind")
def history(limit: int = Query(20, ge=1, le=1000), store: RagStore = Depends(get_store)) -> list[dict[str, Any]]:
    return store.consistency.history(limit)


@router.get("/{report_id}", summary="One stored report with its findings and repairs")
def report(report_id: int, store: RagStore = Depends(get_store)) -> dict[str, Any]:
    return store.consistency.report(report_id)
