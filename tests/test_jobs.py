"""The job queue: leases, expiry, retries with backoff, dead letter."""

from __future__ import annotations

import time

import pytest

from ragstore.config import Settings
from ragstore.db.engine import Database
from ragstore.errors import Conflict
from ragstore.migrations import Migrator
from ragstore.sync.jobs import JobQueue, JobState


@pytest.fixture
def queue(settings: Settings) -> JobQueue:
    db = Database(settings)
    Migrator(db.engine).upgrade()
    # A backoff of 0.25-0.5 s: long enough that a loaded machine still sees it, short enough to wait out.
    return JobQueue(db, backoff_base_s=0.5, backoff_max_s=0.5)


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


def test_an_expired_lease_is_taken_over(queue: JobQueue) -> None:
    job_id = queue.enqueue("work")
    assert queue.claim("dead-worker", lease_s=0.05) is not None
    time.sleep(0.1)
    job = queue.claim("w2")
    assert job is not None and job.id == job_id and job.attempts == 2
    with pytest.raises(Conflict):
        queue.complete(job_id, "dead-worker")  # the old owner lost its lease
    queue.complete(job_id, "w2")


def test_failures_back_off_then_dead_letter(queue: JobQueue) -> None:
    job_id = queue.enqueue("flaky", max_attempts=2)
    job = queue.claim("w")
    assert job is not None
    assert queue.fail(job_id, "w", "boom") == JobState.QUEUED
    assert queue.claim("w") is None  # backing off
    time.sleep(0.6)
    assert queue.claim("w") is not None
    assert queue.fail(job_id, "w", "boom again") == JobState.DEAD
    assert queue.counts() == {JobState.DEAD: 1}
    queue.requeue_dead(job_id)
    assert queue.claim("w") is not None


def test_heartbeat_extends_the_lease(queue: JobQueue) -> None:
    job_id = queue.enqueue("long")
    assert queue.claim("w", lease_s=0.05) is not None
    queue.heartbeat(job_id, "w", lease_s=60)
    time.sleep(0.1)
    assert queue.claim("other") is None
