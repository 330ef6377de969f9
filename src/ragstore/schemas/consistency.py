"""What `store.consistency` reports: a check's run record, its findings by kind, the repairs and the
comparison with the run before it.

The same report is stored (`consistency_reports`), returned by `check` and `report`, sent by
`/admin/consistency` and printed by `ragstore check --json`; its keys are part of the interface (alerts and
scripts are built on them), so they are named here once.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ragstore.schemas.core import IsoTime, Model, SparseModel

__all__ = [
    "CollectionDrift",
    "ConsistencyFinding",
    "ConsistencyReport",
    "ConsistencyRunSummary",
    "KindDescription",
    "RepairReport",
    "RunStateName",
]

# How a run of the run ledger stands (db/models.py RunState, whose values these are).
RunStateName = Literal["running", "complete", "failed", "interrupted"]


class ConsistencyFinding(Model):
    """One kind of drift in one collection (or none, for stuck operations and orphan index collections)."""

    kind: str  # a stable code of consistency/kinds.py
    safe: bool  # whether `check --repair` mends it
    collection: str | None
    collection_id: int | None
    count: int  # exact
    ids: list[int]  # a sample (the first 20)
    detail: str
    reason: str  # which variant of the kind, e.g. dead or overdue stuck operations
    remedy: str


class CollectionDrift(Model):
    """The counts the check compared for one collection."""

    sql_indexed: int
    index_vectors: int
    documents: int


class KindDescription(Model):
    safe: bool
    meaning: str


class RepairReport(Model):
    """What a repair did: operations queued by kind, documents recounted, operations retried, and the
    counts of the unsafe kinds it left alone."""

    queued_operations: dict[str, int] = Field(default_factory=dict)
    recounted_documents: int = 0
    rescheduled_operations: int = 0
    requeued_dead: int = 0
    applied: int = 0
    failed: int = 0
    left_alone: dict[str, int] = Field(default_factory=dict)


class ConsistencyRunSummary(Model):
    """One run as `history` lists it: when, what started it, what it found by kind."""

    id: int
    trigger: str
    state: RunStateName
    backend: str
    collection: str | None  # None: every collection
    repair: bool
    started_at: IsoTime | None
    finished_at: IsoTime | None
    duration_ms: float | None
    problems: int | None  # found, before any repair; None while running
    counts: dict[str, int]  # found, by kind
    error: str | None


class ConsistencyReport(ConsistencyRunSummary, SparseModel):
    """A run with its findings. A run that failed or is still running has none of the parts below (the keys
    are absent); `repairs` and `remaining_findings` are there only when a repair ran."""

    findings: list[ConsistencyFinding] | None = None
    collections: dict[str, CollectionDrift] | None = None
    kinds: dict[str, KindDescription] | None = None
    repairs: RepairReport | None = None
    remaining_findings: list[ConsistencyFinding] | None = None  # after the repairs, when some kind was safe
    remaining: dict[str, int] | None = None  # by kind, after the repairs (= counts without a repair)
    previous: ConsistencyRunSummary | None = None  # the last complete run over the same scope
    changes: dict[str, int] | None = None  # counts minus the previous run's, by kind

    @property
    def finished(self) -> bool:
        """Whether the check ran to the end (and so has findings); a failed or running one has none."""
        return self.remaining is not None
