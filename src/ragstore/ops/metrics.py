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

import os
import platform
from collections.abc import Iterator
from contextlib import suppress
from datetime import UTC
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from ragstore import __version__
from ragstore.db.models import Collection, Job, OpState, SyncOperation
from ragstore.sync.jobs import JobState
from ragstore.telemetry import EVENTS, MULTIPROCESS_ENV, multiprocess

if TYPE_CHECKING:
    from ragstore.service import RagStore

__all__ = ["CONTENT_TYPE", "StoreCollector", "exposition"]

# The text format generate_latest writes, named as such: Prometheus servers of every version read it.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def exposition(store: RagStore) -> bytes:
    """The text format of every metric: the event metrics (summed over the processes in multiprocess mode)
    and the store's state read now."""
    directory = os.environ.get(MULTIPROCESS_ENV)
    if multiprocess() and directory:
        events = CollectorRegistry()
        MultiProcessCollector(events, path=directory)  # type: ignore[no-untyped-call]
    else:
        events = EVENTS
    state = CollectorRegistry(auto_describe=False)
    state.register(StoreCollector(store))
    return generate_latest(events) + generate_latest(state)


def _counts_by(column: Any) -> Any:
    return select(column, func.count()).group_by(column)


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
            outbox = {state: count for state, count in s.execute(_counts_by(SyncOperation.state))}
            oldest = s.scalar(select(func.min(SyncOperation.created_at)).where(SyncOperation.state == OpState.PENDING))
            jobs = {state: count for state, count in s.execute(_counts_by(Job.state))}
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
        if oldest is not None and oldest.tzinfo is None:  # SQLite returns the stored UTC time without its zone
            oldest = oldest.replace(tzinfo=UTC)
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
        vectors = GaugeMetricFamily(
            "ragstore_vectors", "Vectors held by the vector index, by backend", labels=["backend"]
        )
        held = 0
        for collection_id in collection_ids:
            with suppress(Exception):  # an index that cannot count now is reported by /health, not here
                held += store.components.vectors.count(collection_id)
        vectors.add_metric([store.components.vectors.name], float(held))
        yield vectors
