"""The job queue: leases, expiry, retries with backoff, dead letter.

Time is a ManualClock: a lease lapses or a backoff ends when the test advances it, never by sleeping.
"""

from __future__ import annotations

import pytest

from ragstore.clock import ManualClock
from ragstore.config import Settings
from ragstore.db.engine import Database
from ragstore.errors import Conflict
from ragstore.migrations import Migrator
from ragstore.service import RagStore
from ragstore.sync.job_service import JobCounts
from ragstore.sync.jobs import JobQueue, JobState


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def queue(settings: Settings, clock: ManualClock) -> JobQueue:
    db = Database(settings)
    Migrator(db.engine).upgrade()
    # A backoff of 0.25-0.5 s (jittered): time only moves when a test advances the clock.
    return JobQueue(db, backoff_base_s=0.5, backoff_max_s=0.5, clock=clock)


def test_claim_complete(queue: JobQueue) -> None:
    job_id = queue.enqueue("rebuild", {"collection": "kb"})
    job = queue.claim("w1")
    assert job is not None and job.id == job_id and job.payload == {"collection": "kb"}
    assert queue.claim("w2") is None  # leased
    queue.complete(job_id, "w1", {"vectors": 3})
    assert queue.counts() == {JobState.DONE: 1}


def test_priority_then_age(queue: JobQueue) -> None:
    low = queue.enqueue("a")
    high = queue.enqueue("b", priority=5)
    first, second = queue.claim("w"), queue.claim("w")
    assert first is not None and second is not None
    assert (first.id, second.id) == (high, low)


def test_an_expired_lease_is_taken_over(queue: JobQueue, clock: ManualClock) -> None:
    job_id = queue.enqueue("work")
    assert queue.claim("dead-worker", lease_s=0.05) is not None
    assert queue.claim("w2") is None  # the lease still holds
    clock.advance(0.1)
    job = queue.claim("w2")
    assert job is not None and job.id == job_id and job.attempts == 2
    with pytest.raises(Conflict):
        queue.complete(job_id, "dead-worker")  # the old owner lost its lease
    queue.complete(job_id, "w2")


def test_failures_back_off_then_dead_letter(queue: JobQueue, clock: ManualClock) -> None:
    job_id = queue.enqueue("flaky", max_attempts=2)
    job = queue.claim("w")
    assert job is not None
    assert queue.fail(job_id, "w", "boom") == JobState.QUEUED
    assert queue.claim("w") is None  # backing off
    clock.advance(0.24)
    assert queue.claim("w") is None  # the shortest jittered backoff is 0.25 s
    clock.advance(0.27)
    assert queue.claim("w") is not None
    assert queue.fail(job_id, "w", "boom again") == JobState.DEAD
    assert queue.counts() == {JobState.DEAD: 1}
    queue.requeue_dead(job_id)
    assert queue.claim("w") is not None


def test_heartbeat_extends_the_lease(queue: JobQueue, clock: ManualClock) -> None:
    job_id = queue.enqueue("long")
    assert queue.claim("w", lease_s=0.05) is not None
    queue.heartbeat(job_id, "w", lease_s=60)
    clock.advance(59)
    assert queue.claim("other") is None
    clock.advance(2)
    assert queue.claim("other") is not None  # the renewed lease, too, lapses in the end


def test_the_facade_counts_jobs_by_state_and_passes_options_on(store: RagStore) -> None:
    """`store.jobs` returns typed counts (every state, 0 when empty) and hands enqueue's options to the queue."""
    assert store.jobs.counts() == JobCounts()
    first = store.jobs.enqueue("checkpoint")
    urgent = store.jobs.enqueue("checkpoint", priority=5, max_attempts=1)
    store.jobs.enqueue("checkpoint", delay_s=3600)  # not due for an hour
    job = store.jobs.queue.claim("w")
    assert job is not None and job.id == urgent  # the priority reached the queue
    store.jobs.queue.fail(urgent, "w", "boom")  # max_attempts=1: dead at once
    assert store.jobs.counts() == JobCounts(queued=2, dead=1)
    assert store.jobs.counts().leased == 0 and first < urgent


def test_a_permanent_failure_is_dead_at_once_and_a_total_shows_while_queued(queue: JobQueue) -> None:
    job_id = queue.enqueue("ingest", {"collection": "kb"}, max_attempts=5, total=7)
    assert queue.recent(job_id=job_id)[0]["result"] == {"progress": {"done": 0, "total": 7}}
    assert queue.claim("w") is not None
    assert queue.fail(job_id, "w", "refused input", permanent=True) == JobState.DEAD
    assert queue.claim("w") is None and queue.counts() == {JobState.DEAD: 1}
