"""Each run of the checker is stored (`consistency_reports`) and compared with the run before it.

A report is a record of the run ledger (db/runs.py), which says how a run starts (a unique slot for a
scheduled one), ends and is found: this module adds what is particular to checks, the backend and scope,
the counts by kind and the comparison with the previous run over the same scope.
"""

from __future__ import annotations

from typing import Any

from ragstore.db.engine import Database
from ragstore.db.models import ConsistencyReport as ReportRow
from ragstore.db.runs import RunLedger, RunState
from ragstore.schemas import ConsistencyReport, ConsistencyRunSummary

__all__ = ["ReportStore"]


class ReportStore:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.ledger = RunLedger(db, ReportRow)

    def start(
        self, *, trigger: str, backend: str, collection: str | None, repair: bool, slot: str | None
    ) -> int | None:
        """The new report's id; None if another process already took this slot."""
        return self.ledger.start(
            trigger=trigger, slot=slot, backend=backend, collection=collection, repair=repair, counts={}
        )

    def finish(
        self,
        report_id: int,
        *,
        counts: dict[str, int],
        details: dict[str, Any],
        duration_ms: float,
        error: str | None = None,
    ) -> None:
        self.ledger.finish(
            report_id,
            state=RunState.FAILED if error else RunState.COMPLETE,
            duration_ms=duration_ms,
            details=details,
            error=error,
            counts=counts,
            problems=sum(counts.values()),
        )

    def previous(self, report_id: int, collection: str | None) -> ConsistencyRunSummary | None:
        """The last finished run before this one over the same scope (all collections, or the same one)."""
        column = ReportRow.collection
        scope = column.is_(None) if collection is None else column == collection
        return self.ledger.latest(self._summary, ReportRow.id < report_id, ReportRow.state == RunState.COMPLETE, scope)

    def get(self, report_id: int) -> ConsistencyReport | None:
        return self.ledger.get(report_id, self._full)

    def latest(self) -> ConsistencyReport | None:
        return self.ledger.latest(self._full, ReportRow.state != RunState.RUNNING)

    def history(self, limit: int = 20) -> list[ConsistencyRunSummary]:
        return self.ledger.history(self._summary, limit=limit)

    @staticmethod
    def _fields(row: ReportRow) -> dict[str, Any]:
        return {
            "id": row.id,
            "trigger": row.trigger,
            "state": row.state,
            "backend": row.backend,
            "collection": row.collection,
            "repair": row.repair,
            "started_at": row.started_at,
            "finished_at": row.finished_at,
            "duration_ms": row.duration_ms,
            "problems": row.problems,
            "counts": dict(row.counts or {}),
            "error": row.error,
        }

    @classmethod
    def _summary(cls, row: ReportRow) -> ConsistencyRunSummary:
        return ConsistencyRunSummary.model_validate(cls._fields(row))

    @classmethod
    def _full(cls, row: ReportRow) -> ConsistencyReport:
        """The run's record with the details stored with it; a part the run did not reach stays absent."""
        return ConsistencyReport.model_validate({**cls._fields(row), **dict(row.details or {})})
