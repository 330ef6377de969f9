"""Each run of the checker is stored (`consistency_reports`) and compared with the run before it.

A run's row is written `running` before the check starts and finished after, so a crash mid-check leaves
a `running` row, never a report that looks complete. A scheduled run names its slot (the minute it was
due): the unique slot lets exactly one of several server processes take it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ragstore.db.engine import Database
from ragstore.db.models import ConsistencyReport, utcnow

__all__ = ["ReportStore"]


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


class ReportStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def start(
        self, *, trigger: str, backend: str, collection: str | None, repair: bool, slot: str | None
    ) -> int | None:
        """The new report's id; None if another process already took this slot."""

        def unit(s: Session) -> int:
            row = ConsistencyReport(
                slot=slot,
                trigger=trigger,
                state="running",
                backend=backend,
                collection=collection,
                repair=repair,
                counts={},
                details={},
            )
            s.add(row)
            s.flush()
            return int(row.id)

        try:
            return self.db.write(unit)
        except IntegrityError:
            return None

    def finish(
        self,
        report_id: int,
        *,
        counts: dict[str, int],
        details: dict[str, Any],
        duration_ms: float,
        error: str | None = None,
    ) -> None:
        def unit(s: Session) -> None:
            row = s.get(ConsistencyReport, report_id)
            if row is None:
                return
            row.state = "failed" if error else "done"
            row.counts = counts
            row.problems = sum(counts.values())
            row.details = details
            row.duration_ms = duration_ms
            row.finished_at = utcnow()
            row.error = error

        self.db.write(unit)

    def previous(self, report_id: int, collection: str | None) -> dict[str, Any] | None:
        """The last finished run before this one over the same scope (all collections, or the same one)."""
        with self.db.read() as s:
            row = s.scalars(
                select(ConsistencyReport)
                .where(
                    ConsistencyReport.id < report_id,
                    ConsistencyReport.state == "done",
                    ConsistencyReport.collection.is_(None)
                    if collection is None
                    else ConsistencyReport.collection == collection,
                )
                .order_by(ConsistencyReport.id.desc())
                .limit(1)
            ).first()
            return self._summary(row) if row is not None else None

    def get(self, report_id: int) -> dict[str, Any] | None:
        with self.db.read() as s:
            row = s.get(ConsistencyReport, report_id)
            return self._full(row) if row is not None else None

    def latest(self) -> dict[str, Any] | None:
        with self.db.read() as s:
            row = s.scalars(
                select(ConsistencyReport)
                .where(ConsistencyReport.state != "running")
                .order_by(ConsistencyReport.id.desc())
                .limit(1)
            ).first()
            return self._full(row) if row is not None else None

    def history(self, limit: int = 20) -> list[dict[str, Any]]:
        with self.db.read() as s:
            rows = s.scalars(select(ConsistencyReport).order_by(ConsistencyReport.id.desc()).limit(limit))
            return [self._summary(r) for r in rows]

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

    def _full(self, row: ConsistencyReport) -> dict[str, Any]:
        return {**self._summary(row), **dict(row.details or {})}
