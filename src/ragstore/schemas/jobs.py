"""How far a job has got, as `GET /v1/jobs/{id}`, `GET /v1/jobs` and `ragstore jobs list` show it.

A job's raw `result` is whatever its handler returned; a reader polling an ingest should not have to know
its keys. `JobProgress` names every field: documents and chunks done out of how many, the rate in chunks
per second and an estimate of the seconds left (from the chunks still to embed at that rate), the outcomes
so far by status, and the error of the last failed attempt.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ragstore.schemas.core import Model

__all__ = ["JOB_PROGRESS_STATES", "JobProgress", "JobProgressState", "OutcomeCounts"]

# queued: not started (or waiting for a retry after `error`); running: a worker holds it; done: finished;
# failed: gave up after its last attempt (dead-lettered).
JobProgressState = Literal["queued", "running", "done", "failed"]
JOB_PROGRESS_STATES: tuple[JobProgressState, ...] = ("queued", "running", "done", "failed")


class OutcomeCounts(Model):
    """Documents handled so far, by ingest status (the statuses of `IngestOutcome`)."""

    added: int = 0
    unchanged: int = 0
    replaced: int = 0
    duplicate: int = 0
    deleted: int = 0
    failed: int = 0


class JobProgress(Model):
    """Progress of a job in counts a person can read; chunk fields stay 0 for a job that counts none."""

    state: JobProgressState
    documents_done: int = 0
    documents_total: int = 0
    chunks_embedded: int = 0  # have their vector (embedded now, or already known)
    chunks_stored: int = 0  # committed (or found already stored: an unchanged document)
    chunks_total: int = 0  # the chunks of every document of the job
    chunks_per_s: float | None = Field(None, description="Chunks embedded per second since the attempt began.")
    eta_s: float | None = Field(None, description="Seconds left at that rate; null until a rate is known.")
    outcomes: OutcomeCounts = Field(default_factory=OutcomeCounts)
    error: str | None = Field(None, description="The error of the last failed attempt, if any.")
