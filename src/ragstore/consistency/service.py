"""The consistency sub-facade, `store.consistency`: compare SQL with the vector index, repair, keep reports.

A check is a run with a stored report, so that an operator (or the admin page) can see what drifted and
whether it is getting better; `slot` lets one of several processes take a scheduled run.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ragstore.consistency.checker import ConsistencyChecker
from ragstore.consistency.kinds import KINDS
from ragstore.consistency.repair import Repairer
from ragstore.consistency.reports import ReportStore
from ragstore.documents.catalog import Catalog
from ragstore.errors import InvalidInput, NotFound
from ragstore.schemas import ConsistencyReport, ConsistencyRunSummary
from ragstore.security.audit import AuditTrail
from ragstore.sync.applier import OutboxApplier
from ragstore.valid_text import INT64_MAX

__all__ = ["ConsistencyService"]

log = logging.getLogger(__name__)


@dataclass(kw_only=True, slots=True)
class ConsistencyService:
    """`wiring.build` makes `repairer`, `backend` and `persist` for it; each other field is the store's
    component of that name."""

    catalog: Catalog
    applier: OutboxApplier
    checker: ConsistencyChecker
    repairer: Repairer
    reports: ReportStore
    backend: Callable[[], str]
    persist: Callable[[], None]
    audit_trail: AuditTrail  # repairs are recorded, success or failure

    def check(
        self,
        collection: str | None = None,
        *,
        repair: bool = False,
        trigger: str = "manual",
        slot: str | None = None,
    ) -> ConsistencyReport | None:
        """Compare SQL with the vector index, store the report, and (with `repair`) mend the safe kinds.

        Returns the stored report: `counts` what the check found by kind, `remaining` what is left after
        the repairs, `previous` the last run over the same scope and `changes` the difference. None when
        `slot` was already taken by another process (scheduled runs).
        """
        if collection is not None:
            self.catalog.resolve(collection)
        report_id = self.reports.start(
            trigger=trigger, backend=self.backend(), collection=collection, repair=repair, slot=slot
        )
        if report_id is None:
            return None
        started = time.perf_counter()
        try:
            self.applier.advance()  # this replica level with every finished operation first
            result = self.checker.check(collection)
            found = result.counts()
            details: dict[str, Any] = {
                "findings": [f.to_dict() for f in result.findings],
                "collections": result.collections,
                "kinds": {k.value: {"safe": i.safe, "meaning": i.meaning} for k, i in KINDS.items()},
            }
            remaining = found
            if repair and result.findings:
                with self.audit_trail.recorded("consistency.repair", target=collection or "*", trigger=trigger) as done:
                    details["repairs"] = done["repairs"] = self.repairer.repair(result).to_dict()
                if any(KINDS[f.kind].safe for f in result.findings):
                    self.persist()
                    after = self.checker.check(collection)
                    remaining = after.counts()
                    details["remaining_findings"] = [f.to_dict() for f in after.findings]
            details["remaining"] = remaining
            previous = self.reports.previous(report_id, collection)
            details["previous"] = previous.model_dump(mode="json") if previous else None
            details["changes"] = {k: n - int(previous.counts.get(k, 0)) for k, n in found.items()} if previous else None
        except Exception as exc:
            self.reports.finish(
                report_id,
                counts={},
                details={},
                duration_ms=(time.perf_counter() - started) * 1000,
                error=f"{type(exc).__name__}: {exc}",
            )
            raise
        self.reports.finish(
            report_id, counts=found, details=details, duration_ms=round((time.perf_counter() - started) * 1000, 1)
        )
        report = self.reports.get(report_id)
        assert report is not None
        log.log(
            logging.WARNING if sum(remaining.values()) else logging.INFO,
            "consistency check %d (%s): found %s, remaining %s",
            report_id,
            trigger,
            {k: n for k, n in found.items() if n},
            {k: n for k, n in remaining.items() if n},
        )
        return report

    def history(self, limit: int = 20) -> list[ConsistencyRunSummary]:
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 1000:
            raise InvalidInput(f"limit must be an integer from 1 to 1000, got {limit!r}")
        return self.reports.history(limit)

    def report(self, report_id: int | None = None) -> ConsistencyReport:
        """A stored report by id, or the newest finished one."""
        if report_id is not None and not 1 <= report_id <= INT64_MAX:
            raise NotFound(f"no consistency report {report_id}")  # no row can have it: never an overflow
        report = self.reports.latest() if report_id is None else self.reports.get(report_id)
        if report is None:
            raise NotFound("no consistency report yet" if report_id is None else f"no consistency report {report_id}")
        return report
