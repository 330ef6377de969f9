"""Jobs: what a queued piece of work (an ingest queued with ?wait=false, or a large one) has done so far."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Path, Query

from ragstore.api.deps import get_store
from ragstore.api.errors import DOWN, error_responses
from ragstore.api.permissions import authorize, readable, require
from ragstore.errors import NotFound
from ragstore.schemas import JobInfo
from ragstore.schemas.core import INT64_MAX, StorableStr
from ragstore.security.principal import ALL_COLLECTIONS, Principal, Role
from ragstore.service import RagStore

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

MAX_LIST = 200
JobStateName = Literal["queued", "leased", "done", "dead"]


@router.get(
    "",
    response_model=list[JobInfo],
    summary="Jobs, newest first: those of the collections the caller may write (an admin: all), with progress",
    responses=error_responses(
        (404, "`collection` names a collection the caller holds no grant on (as if it did not exist)."),
        (422, "`state`, `limit` (1 to 200), `offset` or `collection` is not valid."),
        DOWN,
    ),
)
def list_jobs(
    collection: StorableStr | None = Query(None, min_length=1, max_length=255, description="Only this collection's."),
    state: JobStateName | None = Query(None, description="Only jobs in this queue state."),
    limit: int = Query(50, ge=1, le=MAX_LIST),
    offset: int = Query(0, ge=0, le=INT64_MAX),
    store: RagStore = Depends(get_store),
    principal: Principal = Depends(require(Role.WRITE, on_any=True)),
) -> list[JobInfo]:
    # Jobs are what writers queue: a key sees the jobs of the collections it may write, never the others'
    # (not even that they exist); a key that writes every collection sees every job, those of no collection too.
    permitted: set[str] | None = None
    if not principal.allows(Role.WRITE, ALL_COLLECTIONS):
        permitted = readable(principal, principal.grants, Role.WRITE) - {ALL_COLLECTIONS}
    if collection is not None and permitted is not None:
        authorize(principal, Role.WRITE, collection)
    return store.jobs.list(state=state, limit=limit, offset=offset, collection=collection, collections=permitted)


@router.get(
    "/{job_id}",
    response_model=JobInfo,
    summary="One job: state, attempts, progress (documents and chunks done, chunks/s, seconds left) and result",
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
