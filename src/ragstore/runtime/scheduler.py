"""Scheduled maintenance inside the server process (APScheduler): the consistency check and backups.

The schedule is a crontab line (`RAGSTORE_CHECK_SCHEDULE`, local time; empty turns it off for users who
run `ragstore check` from cron instead). Several server processes may each run this scheduler: every
run names its slot (the minute it was due), and the unique slot in `consistency_reports` lets exactly
one process take it. Backups work the same way (`backup_runs.slot`); a scheduled backup is verified (when
RAGSTORE_BACKUP_VERIFY_SCHEDULED) and followed by a prune under the retention policy. When the full and the
incremental schedules fire together, the one that takes the repository's lock runs and the other is skipped.
Usage retention runs daily (USAGE_SCHEDULE): it makes the coming months' partitions of `api_usage_logs` on
PostgreSQL and removes rows past RAGSTORE_USAGE_RETAIN_DAYS; every step is idempotent, so several processes
may run it.
Chat retention runs daily too (CHAT_PURGE_SCHEDULE): soft-deleted and expired conversations, and idle ones
past RAGSTORE_CHAT_RETENTION_DAYS, are removed for good (chat/retention.py).
Sessions past their expiry (revoked ones included) are deleted every `SESSION_CLEANUP_MINUTES` minutes; the
delete is idempotent, so several processes running it at once is harmless.

Every TUNING_CHECK_MINUTES (with up to a minute of jitter, so the processes of one server spread out) each
process follows the search breadths stored by the others and measures the collections that are due
(indexing/tuning.py): a measurement is written whole, so two processes measuring at once only repeat work.

The audit log gets a signed checkpoint on `RAGSTORE_AUDIT_CHECKPOINT_SCHEDULE`, written even when nothing
happened (one per run between all processes: a process that finds the run's checkpoint written skips), and the
scheduled consistency check verifies the audit chain too: a broken chain is logged at error level and left as
it is (evidence is never "repaired").
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from ragstore.errors import Conflict
from ragstore.runtime.maintenance import Action, MaintenanceResult, run_maintenance
from ragstore.security.context import acting_as
from ragstore.security.principal import Principal

if TYPE_CHECKING:
    from ragstore.schemas import (
        AuditCheckpointInfo,
        AuditVerification,
        BackupSummary,
        HealthSnapshot,
        PurgeReport,
        TuningReport,
        UsageMaintenance,
    )
    from ragstore.service import RagStore

__all__ = [
    "AUDIT_CHECKPOINT_JOB",
    "BACKUP_JOBS",
    "CACHE_SAMPLE_JOB",
    "CHAT_PURGE_JOB",
    "CHAT_PURGE_SCHEDULE",
    "CHECK_JOB",
    "HEALTH_SNAPSHOT_JOB",
    "INDEX_TUNING_JOB",
    "MAINTENANCE_JOBS",
    "SESSION_CLEANUP_JOB",
    "TUNING_CHECK_MINUTES",
    "USAGE_JOB",
    "USAGE_SCHEDULE",
    "MaintenanceScheduler",
    "run_cache_sample",
    "run_chat_purge",
    "run_health_snapshot",
    "run_index_tuning",
    "run_scheduled_audit_verify",
    "run_scheduled_backup",
    "run_scheduled_check",
    "run_scheduled_checkpoint",
    "run_scheduled_maintenance",
    "run_session_cleanup",
    "run_usage_maintenance",
]

log = logging.getLogger(__name__)
CHECK_JOB = "consistency-check"
BACKUP_JOBS = {"full": "backup-full", "incremental": "backup-incremental"}
USAGE_JOB = "usage-retention"
USAGE_SCHEDULE = (
    "17 3 * * *"  # daily, off the hour; partitions are made three months ahead, so a missed day is harmless
)
SESSION_CLEANUP_JOB = "session-cleanup"
SESSION_CLEANUP_MINUTES = 60
AUDIT_CHECKPOINT_JOB = "audit-checkpoint"
CHAT_PURGE_JOB = "chat-purge"
HEALTH_SNAPSHOT_JOB = "health-snapshot"
MAINTENANCE_JOBS: dict[Action, str] = {"cleanup": "maintenance-cleanup", "optimize": "maintenance-optimize"}
CHAT_PURGE_SCHEDULE = "43 3 * * *"  # daily, off the hour and apart from the usage job
CACHE_SAMPLE_JOB = "cache-sample"  # issue 18: cache_metadata rows (records/stats.py CACHE_SAMPLE_MINUTES)
INDEX_TUNING_JOB = "index-tuning"  # issue 22: search breadths followed and measured where due
TUNING_CHECK_MINUTES = 10


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


def run_usage_maintenance(store: RagStore) -> UsageMaintenance | None:
    """Partitions ahead and retention of the usage log (by the store's clock); what it did, or None if it failed.

    Removing usage rows destroys records, so a run that removed any writes `usage.prune` to the audit log."""
    try:
        report = store.usage.maintain()
    except Exception:
        log.exception("the usage retention job failed")
        return None
    if report.partitions_dropped or report.rows_deleted:
        with acting_as(Principal.system()):
            store.components.audit_trail.record(
                "usage.prune",
                target="api_usage_logs",
                details={
                    "cutoff": report.cutoff.isoformat(),
                    "partitions_dropped": report.partitions_dropped,
                    "rows_deleted": report.rows_deleted,
                },
            )
    return report


def run_cache_sample(store: RagStore) -> int:
    """One cache_metadata row per cache layer (its hits and misses now); how many were written. Each process
    samples its own in-process counters, so several processes each write their own rows, as they should."""
    try:
        with acting_as(Principal.system()):
            return len(store.records.sample_caches())
    except Exception:
        log.exception("the scheduled cache sample failed")
        return 0


def run_session_cleanup(store: RagStore) -> int:
    """Delete expired sessions (security/sessions.py keeps revoked ones until then); how many went."""
    try:
        return store.users.cleanup_sessions().deleted
    except Exception:
        log.exception("the scheduled session cleanup failed")
        return 0


def run_chat_purge(store: RagStore) -> PurgeReport | None:
    """Remove soft-deleted and expired conversations, and idle ones past RAGSTORE_CHAT_RETENTION_DAYS (when
    set); every batch is audited by the purge itself. Idempotent: processes that run it at once share the work."""
    days = store.settings.chat_retention_days
    try:
        with acting_as(Principal.system()):
            return store.chat.purge(timedelta(days=days) if days > 0 else None)
    except Exception:
        log.exception("the scheduled chat purge failed")
        return None


def run_health_snapshot(store: RagStore) -> HealthSnapshot | None:
    """This minute's health in `system_health` (ops/history.py); None when another process took the slot."""
    try:
        return store.ops.snapshot()
    except Exception:
        log.exception("the scheduled health snapshot failed")
        return None


def run_index_tuning(store: RagStore) -> TuningReport | None:
    """Follow the breadths other processes stored, measure the collections that are due; None if it failed."""
    try:
        return store.index.tune_due()
    except Exception:
        log.exception("the scheduled search tuning failed")
        return None


def run_scheduled_maintenance(store: RagStore, action: Action) -> MaintenanceResult | None:
    """A scheduled optimize or cleanup (runtime/maintenance.py), by the one process that takes the slot."""
    slot = f"{action}:{store.clock.now():%Y-%m-%dT%H:%M}"
    try:
        return run_maintenance(store, action, trigger="schedule", slot=slot)
    except Exception:
        log.exception("the scheduled maintenance %s failed", action)
        return None


class MaintenanceScheduler:
    def __init__(
        self,
        store: RagStore,
        *,
        check_schedule: str,
        check_repair: bool,
        backup_schedules: dict[str, str] | None = None,
        verify_backups: bool = True,
        usage_schedule: str = "",  # the server passes USAGE_SCHEDULE
        session_cleanup: bool = False,
        audit_checkpoint_schedule: str = "",
        chat_purge_schedule: str = "",  # the server passes CHAT_PURGE_SCHEDULE
        cache_sample_minutes: int = 0,  # the server passes CACHE_SAMPLE_MINUTES; 0: no sampling
        health_snapshot_schedule: str = "",
        maintenance_schedules: dict[Action, str] | None = None,  # cleanup and optimize, crontab lines
        index_tuning: bool = False,  # the server's scheduler; a test's lists only what it asked for
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
        if session_cleanup:  # the server's scheduler; a test's scheduler lists only what it asked for
            self.scheduler.add_job(
                run_session_cleanup,
                IntervalTrigger(minutes=SESSION_CLEANUP_MINUTES),
                args=[store],
                id=SESSION_CLEANUP_JOB,
                misfire_grace_time=3600,
            )
        if index_tuning:
            self.scheduler.add_job(
                run_index_tuning,
                IntervalTrigger(minutes=TUNING_CHECK_MINUTES, jitter=60),
                args=[store],
                id=INDEX_TUNING_JOB,
                misfire_grace_time=600,
            )
        if cache_sample_minutes > 0:
            self.scheduler.add_job(
                run_cache_sample,
                IntervalTrigger(minutes=cache_sample_minutes),
                args=[store],
                id=CACHE_SAMPLE_JOB,
                misfire_grace_time=600,
            )

        if usage_schedule.strip():
            self.scheduler.add_job(
                run_usage_maintenance,
                CronTrigger.from_crontab(usage_schedule),
                args=[store],
                id=USAGE_JOB,
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

        for action, line in (maintenance_schedules or {}).items():
            if line.strip():
                self.scheduler.add_job(
                    run_scheduled_maintenance,
                    CronTrigger.from_crontab(line),
                    args=[store, action],
                    id=MAINTENANCE_JOBS[action],
                    misfire_grace_time=3600,
                )

        if health_snapshot_schedule.strip():
            self.scheduler.add_job(
                run_health_snapshot,
                CronTrigger.from_crontab(health_snapshot_schedule),
                args=[store],
                id=HEALTH_SNAPSHOT_JOB,
                misfire_grace_time=30,  # a late snapshot would stand for the wrong minute
            )

        if chat_purge_schedule.strip():
            self.scheduler.add_job(
                run_chat_purge,
                CronTrigger.from_crontab(chat_purge_schedule),
                args=[store],
                id=CHAT_PURGE_JOB,
                misfire_grace_time=3600,
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
