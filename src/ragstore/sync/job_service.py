"""The jobs sub-facade, `store.jobs`: queue work for `ragstore worker` processes and see what the queue holds.

Claiming, renewing and finishing jobs is the runner's business (`runtime/job_runner.py`, on the queue
itself); a caller only enqueues and reads. Enqueueing announces itself on the event bus, so an idle worker
starts at once instead of at its next poll.
"""

from __future__ import annotations

import builtins
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any, Unpack

from ragstore.cache.bus import EventBus
from ragstore.errors import NotFound
from ragstore.schemas import JobInfo
from ragstore.sync.job_progress import progress_of
from ragstore.sync.jobs import JobOptions, JobQueue
from ragstore.valid_text import INT64_MAX

__all__ = ["JobCounts", "JobService"]


@dataclass(kw_only=True, slots=True)
class JobService:
    """Its fields are the parts it works with, handed in by `wiring.build`."""

    queue: JobQueue
    bus: EventBus | None

    def enqueue(self, kind: str, payload: dict[str, Any] | None = None, **options: Unpack[JobOptions]) -> int:
        """Queue a job; returns its id. Workers run it at most `max_attempts` times (5 unless given), with
        backoff; `priority` (0) orders due jobs, `delay_s` (0) holds it back, `total` (the items it will
        handle) shows as its progress until a worker starts it."""
        job_id = self.queue.enqueue(kind, payload, **options)
        if self.bus is not None:
            self.bus.publish("jobs")
        return job_id

    def list(
        self,
        *,
        state: str | None = None,
        limit: int = 50,
        offset: int = 0,
        collection: str | None = None,
        collections: Collection[str] | None = None,
    ) -> builtins.list[JobInfo]:
        """The newest jobs first, optionally only those in one state (queued, leased, done, dead), of one
        `collection`, or of the `collections` a caller may see (then a job of no collection is left out)."""
        rows = self.queue.recent(
            state=state, limit=limit, offset=offset, collection=collection, collections=collections
        )
        return [_info(row) for row in rows]

    def get(self, job_id: int) -> JobInfo:
        """One job: its state, attempts, typed `progress`, and the handler's raw `result`."""
        rows = self.queue.recent(job_id=job_id, limit=1) if 1 <= job_id <= INT64_MAX else []
        if not rows:
            raise NotFound(f"job {job_id} does not exist", details={"job_id": job_id})
        return _info(rows[0])

    def collection_of(self, job_id: int) -> str | None:
        """The collection a job works on (its payload's `collection`), for the API's permission check."""
        payload = self.queue.payload(job_id)
        value = None if payload is None else payload.get("collection")
        return value if isinstance(value, str) else None

    def counts(self) -> JobCounts:
        """Jobs by state."""
        return JobCounts(**self.queue.counts())


def _info(row: dict[str, Any]) -> JobInfo:
    collection = row.get("collection")
    progress = progress_of(row["state"], row["last_error"], row["result"])
    return JobInfo.model_validate(
        {**row, "collection": collection if isinstance(collection, str) else None, "progress": progress}
    )


@dataclass(frozen=True, slots=True)
class JobCounts:
    """How many jobs the queue holds in each state (a state with none is 0)."""

    queued: int = 0
    leased: int = 0
    done: int = 0
    dead: int = 0
