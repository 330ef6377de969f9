"""Prometheus metrics: what a running ragstore counts, and the text `GET /metrics` answers with.

Two kinds, because a server may run several processes (`ragstore serve --workers N`):

- **Event metrics** (request and search durations, results, SQL statement durations, rate-limited
  requests, connections checked out) are counted where they happen, in each process (telemetry.py). Under
  `serve` every process writes them to files in one folder of its own run (prometheus-client's multiprocess
  mode, which `serve` turns on through PROMETHEUS_MULTIPROC_DIR before the library is imported:
  cli/metrics_dir.py), so a scrape answered by any process sums them all.
- **State metrics** (the outbox's backlog and the age of its oldest operation, jobs by state, vectors per
  backend, the build) are read from the store when scraped: the database is shared, so one process's
  answer is every process's, and summing would multiply it.

Every label is bounded: route templates, status classes, modes, backends, states, statement kinds; never
a key, a user, a query, a collection or a document.
"""

from __future__ import annotations

import math
import os
import platform
import shutil
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from ragstore import __version__
from ragstore.clock import as_utc
from ragstore.consistency.kinds import KINDS
from ragstore.db.models import BackupRun, Collection, ConsistencyReport, OpState, RunState, SyncOperation
from ragstore.db.state import AUDIT_VERIFIED_KEY, read_state
from ragstore.db.stats import database_size
from ragstore.ops.history import queue_counts
from ragstore.sync.jobs import JobState
from ragstore.telemetry import EVENTS, MULTIPROCESS_ENV, multiprocess

if TYPE_CHECKING:
    from ragstore.service import RagStore

__all__ = ["CONTENT_TYPE", "HttpTotals", "StoreCollector", "exposition", "http_totals"]

# The text format generate_latest writes, named as such: Prometheus servers of every version read it.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def exposition(store: RagStore) -> bytes:
    """The text format of every metric: the event metrics (summed over the processes in multiprocess mode)
    and the store's state read now."""
    state = CollectorRegistry(auto_describe=False)
    state.register(StoreCollector(store))
    return generate_latest(_events()) + generate_latest(state)


@dataclass(frozen=True)
class HttpTotals:
    """HTTP requests answered since the server started, over all its processes."""

    requests: int
    errors: int  # answered with a 5xx
    seconds: float


def http_totals() -> HttpTotals:
    """Read from the request histogram, so the health snapshot (and the admin dashboard's request rate and
    latency drawn from it) counts what a scrape of /metrics would."""
    requests, errors, seconds = 0.0, 0.0, 0.0
    for family in _events().collect():
        if family.name != "ragstore_http_request_duration_seconds":
            continue
        for sample in family.samples:
            if sample.name.endswith("_count"):
                requests += sample.value
                errors += sample.value if sample.labels.get("status_class") == "5xx" else 0
            elif sample.name.endswith("_sum"):
                seconds += sample.value
    return HttpTotals(int(requests), int(errors), round(seconds, 6))


def _events() -> CollectorRegistry:
    """The event metrics: this process's registry, or every process's files in multiprocess mode."""
    directory = os.environ.get(MULTIPROCESS_ENV)
    if not (multiprocess() and directory):
        return EVENTS
    events = CollectorRegistry()
    MultiProcessCollector(events, path=directory)  # type: ignore[no-untyped-call]
    return events


class StoreCollector(Collector):
    """The store's state, read at scrape time (a few indexed counts)."""

    def __init__(self, store: RagStore) -> None:
        self.store = store

    def collect(self) -> Iterator[Metric]:
        store = self.store
        settings = store.settings
        info = GaugeMetricFamily(
            "ragstore_build_info",
            "The running ragstore: version, Python, database dialect and vector backend (always 1)",
            labels=["version", "python", "database", "vector_backend"],
        )
        info.add_metric(
            [__version__, platform.python_version(), store.db.engine.dialect.name, settings.vector_backend], 1.0
        )
        yield info
        now = store.clock.now()
        with store.db.read() as s:
            outbox, jobs = queue_counts(s)
            oldest = s.scalar(select(func.min(SyncOperation.created_at)).where(SyncOperation.state == OpState.PENDING))
            collection_ids = list(s.scalars(select(Collection.id)))
        pending = GaugeMetricFamily(
            "ragstore_outbox_pending_operations", "Outbox operations the vector index has not applied yet"
        )
        pending.add_metric([], float(outbox.get(OpState.PENDING, 0)))
        yield pending
        age = GaugeMetricFamily(
            "ragstore_outbox_oldest_pending_age_seconds",
            "Age of the oldest outbox operation not applied yet (0 when none waits)",
        )
        oldest = as_utc(oldest) if oldest is not None else None
        age.add_metric([], max(0.0, (now - oldest).total_seconds()) if oldest is not None else 0.0)
        yield age
        dead = GaugeMetricFamily(
            "ragstore_outbox_dead_operations", "Outbox operations dead-lettered after their retries ran out"
        )
        dead.add_metric([], float(outbox.get(OpState.DEAD, 0)))
        yield dead
        queue = GaugeMetricFamily("ragstore_jobs", "Jobs in the job queue by state", labels=["state"])
        for state in (JobState.QUEUED, JobState.LEASED, JobState.DONE, JobState.DEAD):
            queue.add_metric([state], float(jobs.pop(state, 0)))
        for state, count in sorted(jobs.items()):  # a state this list does not name yet
            queue.add_metric([str(state)], float(count))
        yield queue
        yield from self._backups_checks_audit(now)
        yield from self._resources()
        vectors = GaugeMetricFamily(
            "ragstore_vectors", "Vectors held by the vector index, by backend", labels=["backend"]
        )
        held = 0
        for collection_id in collection_ids:
            with suppress(Exception):  # an index that cannot count now is reported by /health, not here
                held += store.components.vectors.count(collection_id)
        vectors.add_metric([store.components.vectors.name], float(held))
        yield vectors

    def _backups_checks_audit(self, now: datetime) -> Iterator[Metric]:
        """The last successful backup, the last consistency check's findings, the last audit verification."""
        with self.store.db.read() as s:
            backup = s.execute(
                select(BackupRun.finished_at, BackupRun.size_bytes)
                .where(BackupRun.action == "backup", BackupRun.state == RunState.COMPLETE)
                .order_by(BackupRun.id.desc())
                .limit(1)
            ).first()
            check = s.execute(
                select(ConsistencyReport.finished_at, ConsistencyReport.counts)
                .where(ConsistencyReport.state == RunState.COMPLETE)
                .order_by(ConsistencyReport.id.desc())
                .limit(1)
            ).first()
        finished = as_utc(backup[0]) if backup is not None and backup[0] is not None else None
        yield _gauge(
            "ragstore_backup_last_success_timestamp_seconds",
            "When the last successful backup finished (Unix time; 0: never)",
            finished.timestamp() if finished is not None else 0.0,
        )
        yield _gauge(
            "ragstore_backup_last_success_age_seconds",
            "Seconds since the last successful backup finished (+Inf: never)",
            (now - finished).total_seconds() if finished is not None else math.inf,
        )
        yield _gauge(
            "ragstore_backup_last_size_bytes",
            "Size of the last successful backup",
            float(backup[1] or 0) if backup is not None else 0.0,
        )
        problems = GaugeMetricFamily(
            "ragstore_consistency_problems",
            "What the last completed consistency check found, by kind (0 for every kind it found none of)",
            labels=["kind"],
        )
        for kind in KINDS:
            counts = check[1] if check is not None else {}
            problems.add_metric([kind], float(counts.get(kind, 0)))
        yield problems
        checked = as_utc(check[0]) if check is not None and check[0] is not None else None
        yield _gauge(
            "ragstore_consistency_last_check_timestamp_seconds",
            "When the last completed consistency check finished (Unix time; 0: never)",
            checked.timestamp() if checked is not None else 0.0,
        )
        audit = read_state(self.store.db, AUDIT_VERIFIED_KEY) or {}
        at = datetime.fromisoformat(audit["at"]) if "at" in audit else None
        yield _gauge(
            "ragstore_audit_last_verified_timestamp_seconds",
            "When the audit log was last verified (Unix time; 0: never)",
            at.timestamp() if at is not None else 0.0,
        )
        yield _gauge(
            "ragstore_audit_chain_ok",
            "Whether the last verification of the audit log found it whole (1), broken (0), or none ran (-1)",
            (1.0 if audit["ok"] else 0.0) if "ok" in audit else -1.0,
        )

    def _resources(self) -> Iterator[Metric]:
        """Redis as this process sees it, the disk under the data directory, and the database's size."""
        cache = self.store.components.cache.status()
        yield _gauge(
            "ragstore_redis_degraded",
            "1 while the configured Redis fails (caches, limits and events fall back to this process), else 0",
            0.0 if cache["status"] == "ok" else 1.0,
        )
        data_dir = self.store.settings.data_dir
        if data_dir.exists():
            usage = shutil.disk_usage(data_dir)
            yield _gauge("ragstore_data_dir_free_bytes", "Free space on the data directory's file system", usage.free)
            yield _gauge("ragstore_data_dir_size_bytes", "Size of the data directory's file system", usage.total)
        yield _gauge(
            "ragstore_database_size_bytes",
            "Size of the database (SQLite: its files)",
            float(database_size(self.store.db)),
        )


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, documentation)
    family.add_metric([], value)
    return family
