"""Jobs: what a queued piece of work (a large ingest) has done so far."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Path

from ragstore.api.deps import get_store
from ragstore.api.errors import DOWN, error_responses
from ragstore.schemas import JobInfo
from ragstore.schemas.core import INT64_MAX
from ragstore.service import RagStore

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])


@router.get(
    "/{job_id}",
    response_model=JobInfo,
    summary="One job: state, attempts, and its result (while an ingest runs: progress done/total)",
    responses=error_responses((404, "No job has this id."), (422, "The id is not an integer from 1 to 2^63-1."), DOWN),
)
def get_job(job_id: int = Path(ge=1, le=INT64_MAX), store: RagStore = Depends(get_store)) -> JobInfo:
    return store.jobs.get(job_id)
