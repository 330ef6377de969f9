"""Scheduled maintenance inside the server process (APScheduler): the consistency check and backups.

The schedule is a crontab line (`RAGSTORE_CHECK_SCHEDULE`, local time; empty turns it off for users who
run `ragstore check` from cron instead). Several server processes may each run this scheduler: every
run names its slot (the minute it was due), and the unique slot in `consistency_reports` lets exactly
one process take it. Backups work the same way (`backup_runs.slot`); a scheduled backup is verified (when
RAGSTORE_BACKUP_VERIFY_SCHEDULED) and followed by a prune under the retention policy. When the full and the
incremental schedules fire together, the one that takes the repository's lock runs and the other is skipped.

The audit log gets a signed checkpoint on `RAGSTORE_AUDIT_CHECKPOINT_SCHEDULE`, written even when nothing
happened (one per run between all processes: a process that finds the run's checkpoint written skips), and the
scheduled consistency check verifies the audit chain too: a broken chain is logged at error level and left as
it is (evidence is never "repaired").
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger

from ragstore.errors import Conflict

if TYPE_CHECKING:
    from ragstore.schemas import AuditCheckpointInfo, AuditVerification, BackupSummary
    from ragstore.service import RagStore

__all__ = [
    "AUDIT_CHECKPOINT_JOB",
    "BACKUP_JOBS",
    "CHECK_JOB",
    "MaintenanceScheduler",
    "run_scheduled_audit_verify",
    "run_scheduled_backup",
    "run_scheduled_check",
    "run_scheduled_checkpoint",
]

log = logging.getLogger(__name__)
CHECK_JOB = "consistency-check"
BACKUP_JOBS = {"full": "backup-full", "incremental": "backup-incremental"}
AUDIT_CHECKPOINT_JOB = "audit-checkpoint"


def run_scheduled_check(store: RagStore, *, repair: bool, due: datetime | None = None) -> int | None:
    """One scheduled check; returns the report id, or None if another process took this slot."""
    slot = f"check:{(due or datetime.now()).strftime('%Y-%m-%dT%H:%M')}"
    try:
        report = store.consistency.check(repair=repair, trigger="schedule", slot=slot)
    except Exception:
        log.exception("the scheduled consistency check failed")
        return None
    if report is not None:  # the process that took the slot verifies the audit log too
        run_scheduled_audit_verify(store)
    return None if report is None else report.id


def run_scheduled_audit_verify(store: RagStore) -> AuditVerification | None:
    """Verify the audit log (a broken one is logged at error level by `store.audit.verify`; never repaired)."""
    try:
        return store.audit.verify()
    except Exception:
        log.exception("the scheduled audit log verification failed")
        return None


def run_scheduled_checkpoint(store: RagStore, *, due: datetime | None = None) -> AuditCheckpointInfo | None:
    """One scheduled audit checkpoint, or None when another process wrote this run's already.

    The run is named by the minute it fell due (read from the store's clock), like the other jobs' slots."""
    when = due or store.clock.now().replace(second=0, microsecond=0)
    try:
        made = store.audit.scheduled_checkpoint(when)
    except Exception:
        log.exception("the scheduled audit checkpoint failed")
        return None
    if made is not None:
        log.info("audit checkpoint %d: sequence %d", made.id, made.sequence)
    return made


def run_scheduled_backup(
    store: RagStore, kind: str, *, verify: bool, due: datetime | None = None
) -> BackupSummary | None:
    """One scheduled backup, then its verify and a prune; the backup's summary, or None when skipped."""
    slot = f"backup-{kind}:{(due or datetime.now()).strftime('%Y-%m-%dT%H:%M')}"
    try:
        made = store.backups.create(kind, trigger="schedule", slot=slot)
    except Conflict as exc:
        log.info("scheduled %s backup skipped: %s", kind, exc.message)
        return None
    except Exception:
        log.exception("the scheduled %s backup failed", kind)
        return None
    if made is None:
        return None
    try:
        if verify:
            store.backups.verify(made.id, trigger="schedule")
        store.backups.prune(trigger="schedule")
    except Exception:
        log.exception("verifying or pruning after the scheduled backup %s failed", made.id)
    return made


class MaintenanceScheduler:
    def __init__(
        self,
        store: RagStore,
        *,
        check_schedule: str,
        check_repair: bool,
        backup_schedules: dict[str, str] | None = None,
        verify_backups: bool = True,
        audit_checkpoint_schedule: str = "",
    ) -> None:
        self.store = store
        self.scheduler = BackgroundScheduler(job_defaults={"coalesce": True, "max_instances": 1})
        for kind, line in (backup_schedules or {}).items():
            if line.strip():
                self.scheduler.add_job(
                    run_scheduled_backup,
                    CronTrigger.from_crontab(line),
                    args=[store, kind],
                    kwargs={"verify": verify_backups},
                    id=BACKUP_JOBS[kind],
                    misfire_grace_time=600,
                )
        if check_schedule.strip():
            self.scheduler.add_job(
                run_scheduled_check,
                CronTrigger.from_crontab(check_schedule),
                args=[store],
                kwargs={"repair": check_repair},
                id=CHECK_JOB,
                misfire_grace_time=3600,
            )
        if audit_checkpoint_schedule.strip():
            self.scheduler.add_job(
                run_scheduled_checkpoint,
                CronTrigger.from_crontab(audit_checkpoint_schedule),
                args=[store],
                id=AUDIT_CHECKPOINT_JOB,
                misfire_grace_time=600,
            )

    @property
    def jobs(self) -> dict[str, str | None]:
        """Job id -> next run time (ISO 8601), for health."""
        jobs: dict[str, str | None] = {}
        for job in self.scheduler.get_jobs():
            due = getattr(job, "next_run_time", None)  # set once the scheduler has started
            jobs[job.id] = due.isoformat() if due else None
        return jobs

    def start(self) -> None:
        if self.scheduler.get_jobs():
            self.scheduler.start()

    def stop(self) -> None:
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
