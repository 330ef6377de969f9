"""Each run of the checker is stored (`consistency_reports`) and compared with the run before it.

A report is a record of the run ledger (db/runs.py), which says how a run starts (a unique slot for a
scheduled one), ends and is found: this module adds what is particular to checks, the backend and scope,
the counts by kind and the comparison with the previous run over the same scope.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ragstore.db.engine import Database
from ragstore.db.models import ConsistencyReport
from ragstore.db.runs import RunLedger, RunState

__all__ = ["ReportStore"]


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


class ReportStore:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.ledger = RunLedger(db, ConsistencyReport)

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

    def previous(self, report_id: int, collection: str | None) -> dict[str, Any] | None:
        """The last finished run before this one over the same scope (all collections, or the same one)."""
        column = ConsistencyReport.collection
        scope = column.is_(None) if collection is None else column == collection
        return self.ledger.latest(
            self._summary, ConsistencyReport.id < report_id, ConsistencyReport.state == RunState.COMPLETE, scope
        )

    def get(self, report_id: int) -> dict[str, Any] | None:
        return self.ledger.get(report_id, self._full)

    def latest(self) -> dict[str, Any] | None:
        return self.ledger.latest(self._full, ConsistencyReport.state != RunState.RUNNING)

    def history(self, limit: int = 20) -> list[dict[str, Any]]:
        return self.ledger.history(self._summary, limit=limit)

    @staticmethod
    def _summary(row: ConsistencyReport) -> dict[str, Any]:
        return {
            "id": row.id,
            "trigger": row.trigger,
            "state": row.state,
            "backend": row.backend,
            "collection": row.collection,
            "repair": row.repair,
            "started_at": _iso(row.started_at),
            "finished_at": _iso(row.finished_at),
            "duration_ms": row.duration_ms,
            "problems": row.problems,
            "counts": dict(row.counts or {}),
            "error": row.error,
        }

    @classmethod
    def _full(cls, row: ConsistencyReport) -> dict[str, Any]:
        return {**cls._summary(row), **dict(row.details or {})}
