"""Scheduled maintenance inside the server process (APScheduler): the daily consistency check.

The schedule is a crontab line (`RAGSTORE_CHECK_SCHEDULE`, local time; empty turns it off for users who
run `ragstore check` from cron instead). Several server processes may each run this scheduler: every
run names its slot (the minute it was due), and the unique slot in `consistency_reports` lets exactly
one process take it.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger

if TYPE_CHECKING:
    from ragstore.service import RagStore

__all__ = ["CHECK_JOB", "MaintenanceScheduler", "run_scheduled_check"]

log = logging.getLogger(__name__)
CHECK_JOB = "consistency-check"


def run_scheduled_check(store: RagStore, *, repair: bool, due: datetime | None = None) -> int | None:
    """One scheduled check; returns the report id, or None if another process took this slot."""
    slot = f"check:{(due or datetime.now()).strftime('%Y-%m-%dT%H:%M')}"
    try:
        report = store.check_consistency(repair=repair, trigger="schedule", slot=slot)
    except Exception:
        log.exception("the scheduled consistency check failed")
        return None
    return None if report is None else int(report["id"])


class MaintenanceScheduler:
    def __init__(self, store: RagStore, *, check_schedule: str, check_repair: bool) -> None:
        self.store = store
        self.scheduler = BackgroundScheduler(job_defaults={"coalesce": True, "max_instances": 1})
        if check_schedule.strip():
            self.scheduler.add_job(
                run_scheduled_check,
                CronTrigger.from_crontab(check_schedule),
                args=[store],
                kwargs={"repair": check_repair},
                id=CHECK_JOB,
                misfire_grace_time=3600,
            )

    @property
    def jobs(self) -> dict[str, str | None]:
        """Job id -> next run time (ISO 8601), for health."""
        return {
            job.id: job.next_run_time.isoformat() if job.next_run_time else None for job in self.scheduler.get_jobs()
        }

    def start(self) -> None:
        if self.scheduler.get_jobs():
            self.scheduler.start()

    def stop(self) -> None:
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
