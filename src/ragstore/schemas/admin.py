"""What the admin pages' actions answer: maintenance runs, the outbox's state and what a retry queued."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ragstore.schemas.consistency import RunStateName
from ragstore.schemas.core import IsoTime, Model

__all__ = ["DeadOperation", "MaintenanceRunInfo", "MaintenanceStepInfo", "OutboxStatus", "RetryReport"]


class MaintenanceStepInfo(Model):
    name: str
    count: int | None = Field(description="Rows removed, tables or indexes processed (None: not a count).")
    note: str


class MaintenanceRunInfo(Model):
    """One run of `maintenance optimize` or `cleanup` (the run ledger `maintenance_runs`)."""

    id: int
    action: Literal["optimize", "cleanup"]
    dry_run: bool
    trigger: str
    state: RunStateName
    started_at: IsoTime | None
    finished_at: IsoTime | None
    duration_ms: float | None
    steps: list[MaintenanceStepInfo] = Field(description="What each step did (empty while running or failed).")
    error: str | None


class DeadOperation(Model):
    """An outbox operation that failed every attempt: its vectors never reached the index."""

    id: int
    collection_id: int
    kind: str
    chunks: int
    attempts: int
    last_error: str | None
    updated_at: IsoTime | None


class OutboxStatus(Model):
    pending: int
    dead: int
    oldest_pending_age_s: float | None = Field(description="How long the oldest pending operation has waited.")
    dead_operations: list[DeadOperation] = Field(description="The newest dead operations (at most 100).")


class RetryReport(Model):
    requeued: int = Field(description="How many were queued again.")
