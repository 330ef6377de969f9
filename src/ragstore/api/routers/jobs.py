"""Jobs: what a queued piece of work (a large ingest) has done so far."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Path

from ragstore.api.deps import get_store
from ragstore.api.errors import DOWN, error_responses
from ragstore.api.permissions import authorize, require
from ragstore.errors import NotFound
from ragstore.schemas import JobInfo
from ragstore.schemas.core import INT64_MAX
from ragstore.security.principal import ALL_COLLECTIONS, Principal, Role
from ragstore.service import RagStore

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])


@router.get(
    "/{job_id}",
    response_model=JobInfo,
    summary="One job: state, attempts, and its result (while an ingest runs: progress done/total)",
    responses=error_responses((404, "No job has this id."), (422, "The id is not an integer from 1 to 2^63-1."), DOWN),
)
def get_job(
    job_id: int = Path(ge=1, le=INT64_MAX),
    store: RagStore = Depends(get_store),
    principal: Principal = Depends(require(Role.WRITE, on_any=True)),
) -> JobInfo:
    # Jobs are what writers queue (large ingests): a write key follows its own collection's jobs; a job of a
    # collection it holds nothing on is a 404 like a job that does not exist.
    job = store.jobs.get(job_id)
    if not principal.allows(Role.WRITE, ALL_COLLECTIONS):
        collection = store.jobs.collection_of(job_id)
        if collection is None or not principal.sees_collection(collection):
            raise NotFound(f"job {job_id} does not exist", details={"job_id": job_id})
        authorize(principal, Role.WRITE, collection)
    return job
