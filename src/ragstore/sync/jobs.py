"""A durable job queue in SQL: leased claims, retries with exponential backoff, and a dead-letter state.

A worker claims a job by writing a lease (owner + expiry) in one transaction. A worker that dies simply
stops renewing its lease; when the lease expires, the job is claimable again, so no work is lost and no
job is held forever. On PostgreSQL the claim uses `FOR UPDATE SKIP LOCKED` so claimers never block each
other; on SQLite the claim runs inside `BEGIN IMMEDIATE`, which serialises writers.
"""

from __future__ import annotations

import random
from collections.abc import Collection
from dataclasses import KW_ONLY, dataclass
from datetime import datetime, timedelta
from typing import Any, TypedDict

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session

from ragstore.clock import SYSTEM_CLOCK, Clock
from ragstore.db.engine import Database
from ragstore.db.models import Job
from ragstore.errors import Conflict, InvalidInput, NotFound

__all__ = ["ClaimedJob", "JobOptions", "JobQueue", "JobState"]


class JobState:
    QUEUED = "queued"
    LEASED = "leased"
    DONE = "done"
    DEAD = "dead"


class JobOptions(TypedDict, total=False):
    """`JobQueue.enqueue`'s keywords, for a caller that passes them on (their defaults stay there)."""

    priority: int
    max_attempts: int
    delay_s: float
    total: int


@dataclass(frozen=True)
class ClaimedJob:
    id: int
    kind: str
    payload: dict[str, Any]
    attempts: int
    lease_owner: str
    lease_expires_at: datetime


@dataclass
class JobQueue:
    db: Database
    _: KW_ONLY
    backoff_base_s: float = 1.0
    backoff_max_s: float = 600.0
    lease_s: float = 60.0
    clock: Clock = SYSTEM_CLOCK

    def enqueue(
        self,
        kind: str,
        payload: dict[str, Any] | None = None,
        *,
        priority: int = 0,
        max_attempts: int = 5,
        delay_s: float = 0.0,
        total: int | None = None,
    ) -> int:
        """`total`: how many items the job will handle, shown as progress 0/total until a worker starts it."""

        def unit(s: Session) -> int:
            job = Job(
                kind=kind,
                payload=payload or {},
                priority=priority,
                max_attempts=max_attempts,
                run_after=self.clock.now() + timedelta(seconds=delay_s),
                state=JobState.QUEUED,
                result=None if total is None else {"progress": {"done": 0, "total": total}},
            )
            s.add(job)
            s.flush()
            return job.id

        return self.db.write(unit)

    def claim(self, owner: str, *, lease_s: float | None = None, kinds: list[str] | None = None) -> ClaimedJob | None:
        """Lease the most urgent due job (or one whose lease expired); None when there is none."""
        lease = self.lease_s if lease_s is None else lease_s

        def unit(s: Session) -> ClaimedJob | None:
            now = self.clock.now()
            due = or_(
                and_(Job.state == JobState.QUEUED, Job.run_after <= now),
                and_(Job.state == JobState.LEASED, Job.lease_expires_at < now),
            )
            query = select(Job).where(due).order_by(Job.priority.desc(), Job.run_after, Job.id).limit(1)
            if kinds:
                query = query.where(Job.kind.in_(kinds))
            if not self.db.is_sqlite:
                query = query.with_for_update(skip_locked=True)
            job = s.scalars(query).first()
            if job is None:
                return None
            expires = now + timedelta(seconds=lease)
            job.state = JobState.LEASED
            job.lease_owner = owner
            job.lease_expires_at = expires
            job.attempts += 1
            return ClaimedJob(job.id, job.kind, dict(job.payload), job.attempts, owner, expires)

        return self.db.write(unit)

    def _owned(self, s: Session, job_id: int, owner: str) -> Job:
        job = s.get(Job, job_id)
        if job is None:
            raise NotFound(f"job {job_id} does not exist")
        if job.state != JobState.LEASED or job.lease_owner != owner:
            raise Conflict(f"job {job_id} is not leased by {owner} (state {job.state}, owner {job.lease_owner})")
        return job

    def heartbeat(self, job_id: int, owner: str, *, lease_s: float | None = None) -> None:
        lease = self.lease_s if lease_s is None else lease_s

        def unit(s: Session) -> None:
            self._owned(s, job_id, owner).lease_expires_at = self.clock.now() + timedelta(seconds=lease)

        self.db.write(unit)

    def progress(self, job_id: int, owner: str, done: int, total: int, *, detail: dict[str, Any] | None = None) -> None:
        """Record how far a running job has got (in `result`, until the finished result replaces it), and
        renew its lease: a job that reports progress is alive. `detail`: the handler's typed progress
        (`JobProgress`, as JSON) kept beside done/total."""

        def unit(s: Session) -> None:
            job = self._owned(s, job_id, owner)
            job.result = {"progress": {**(detail or {}), "done": done, "total": total}}
            job.lease_expires_at = self.clock.now() + timedelta(seconds=self.lease_s)

        self.db.write(unit)

    def complete(self, job_id: int, owner: str, result: dict[str, Any] | None = None) -> None:
        def unit(s: Session) -> None:
            job = self._owned(s, job_id, owner)
            job.state, job.result, job.lease_owner, job.lease_expires_at = JobState.DONE, result, None, None

        self.db.write(unit)

    def fail(self, job_id: int, owner: str, error: str, *, permanent: bool = False) -> str:
        """Record a failure: requeue with exponential backoff, or dead-letter after max_attempts (at once when
        `permanent`: a failure that another attempt would only repeat, such as input the work refuses)."""

        def unit(s: Session) -> str:
            job = self._owned(s, job_id, owner)
            job.last_error = error[:4000]
            job.lease_owner, job.lease_expires_at = None, None
            if permanent or job.attempts >= job.max_attempts:
                job.state = JobState.DEAD
            else:
                delay = min(self.backoff_max_s, self.backoff_base_s * 2 ** (job.attempts - 1))
                job.run_after = self.clock.now() + timedelta(seconds=delay * (0.5 + random.random() / 2))
                job.state = JobState.QUEUED
            return job.state

        return self.db.write(unit)

    def requeue_dead(self, job_id: int) -> None:
        def unit(s: Session) -> None:
            job = s.get(Job, job_id)
            if job is None:
                raise NotFound(f"job {job_id} does not exist")
            if job.state != JobState.DEAD:
                raise Conflict(f"job {job_id} is {job.state}, not dead")
            job.state, job.attempts, job.run_after = JobState.QUEUED, 0, self.clock.now()

        self.db.write(unit)

    def recent(
        self,
        *,
        state: str | None = None,
        limit: int = 50,
        offset: int = 0,
        job_id: int | None = None,
        collection: str | None = None,
        collections: Collection[str] | None = None,
    ) -> list[dict[str, Any]]:
        """The newest jobs as plain dicts (for `ragstore jobs list` and the API), or the one `job_id`.

        `collection`: only the jobs of that collection (their payload's); `collections`: only the jobs of
        these (a caller's permitted ones; a job that names no collection is then left out)."""
        of_collection = Job.payload["collection"].as_string()
        # The payload itself is never read: an ingest job's holds every document's text.
        columns = (
            Job.id,
            Job.kind,
            Job.state,
            Job.attempts,
            Job.lease_owner,
            Job.lease_expires_at,
            Job.last_error,
            Job.result,
            Job.created_at,
            of_collection.label("collection"),
        )
        query = select(*columns).order_by(Job.id.desc()).limit(limit).offset(offset)
        if job_id is not None:
            query = query.where(Job.id == job_id)
        if state is not None:
            if state not in (JobState.QUEUED, JobState.LEASED, JobState.DONE, JobState.DEAD):
                raise InvalidInput(f"unknown job state {state!r}")
            query = query.where(Job.state == state)
        if collection is not None:
            query = query.where(of_collection == collection)
        if collections is not None:
            if not collections:
                return []
            query = query.where(of_collection.in_(sorted(collections)))
        with self.db.read() as s:
            return [dict(row._mapping) for row in s.execute(query)]

    def payload(self, job_id: int) -> dict[str, Any] | None:
        """A job's payload (None: no such job)."""
        with self.db.read() as s:
            payload = s.scalar(select(Job.payload).where(Job.id == job_id))
        return None if payload is None else dict(payload)

    def counts(self) -> dict[str, int]:
        with self.db.read() as s:
            rows = s.execute(select(Job.state, func.count()).group_by(Job.state)).all()
        return {state: int(n) for state, n in rows}

    def expire_leases_now(self) -> int:
        """Make every current lease expired (for operators recovering from a known-dead worker)."""

        def unit(s: Session) -> int:
            result = s.execute(
                update(Job)
                .where(Job.state == JobState.LEASED)
                .values(lease_expires_at=self.clock.now() - timedelta(seconds=1))
            )
            return int(result.rowcount or 0)  # type: ignore[attr-defined]

        return self.db.write(unit)
