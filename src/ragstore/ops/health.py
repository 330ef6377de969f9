"""The operations sub-facade, `store.ops`: is every component serving, and how far behind is anything.

Health reads only cheap in-process state and one `SELECT 1`, so a load balancer may poll it often.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import text

from ragstore.analytics.recorder import QueryRecorder
from ragstore.cache.bus import EventBus
from ragstore.cache.layers import CacheLayers
from ragstore.clock import Clock
from ragstore.config import Settings
from ragstore.db.engine import Database
from ragstore.db.models import OpState
from ragstore.db.stats import database_size
from ragstore.embeddings.base import Embedder
from ragstore.errors import InvalidInput
from ragstore.lexical.base import LexicalIndex
from ragstore.migrations import Migrator
from ragstore.ops.alerts import AlertNotifier, Delivery, store_conditions
from ragstore.ops.history import MAX_HOURS, read_history, record_snapshot
from ragstore.ops.metrics import http_totals
from ragstore.schemas import (
    CacheHealth,
    DatabaseHealth,
    EmbedderHealth,
    EventsHealth,
    HealthComponents,
    HealthHistory,
    HealthReport,
    HealthSnapshot,
    QueryLogHealth,
    RateLimiterHealth,
    ReplicaPosition,
    SearchHealth,
    SyncWorkerHealth,
    VectorIndexHealth,
)
from ragstore.search.dense import DenseSearcher
from ragstore.security.ratelimit import RateLimiter
from ragstore.security.usage import UsageWriter
from ragstore.sync.applier import OutboxApplier
from ragstore.sync.changes import ChangeFeed
from ragstore.vectors.base import VectorIndex

__all__ = ["OpsService"]


@dataclass(kw_only=True, slots=True)
class OpsService:
    """Each field is the store's component of that name, handed in by `wiring.build`."""

    settings: Settings
    db: Database
    vectors: VectorIndex
    embedder: Embedder
    applier: OutboxApplier
    changes: ChangeFeed
    cache: CacheLayers
    bus: EventBus | None
    searcher: DenseSearcher
    lexical: LexicalIndex
    recorder: QueryRecorder
    rate_limiter: RateLimiter
    usage_writer: UsageWriter
    clock: Clock
    alert_sleep: Callable[[float], None] = field(default=time.sleep, init=False)  # between webhook retries

    def snapshot(self, due: datetime | None = None) -> HealthSnapshot | None:
        """Record health now in `system_health` (ops/history.py), then, with RAGSTORE_ALERT_WEBHOOK_URL, announce
        what needs a person (ops/alerts.py). None when another process took this slot (and speaks for it).
        Every process also adds its slow statements of the last minute to `slow_statements` (db/slow.py)."""
        self.db.flush_slow(self.clock.now())
        taken = record_snapshot(
            self.db,
            self.clock,
            self.health(),
            database_bytes=database_size(self.db),
            data_dir=self.settings.data_dir,
            retention=timedelta(days=self.settings.health_retention_days),
            due=due,
            http=http_totals(),
        )
        if taken is not None and self.settings.alert_webhook_url:
            self.alert(taken)
        return taken

    def alert(self, snapshot: HealthSnapshot) -> list[Delivery]:
        """Announce the conditions that began since the last call, and those that cleared."""
        data_dir = self.settings.data_dir
        conditions = store_conditions(
            self.db,
            snapshot,
            disk_free_ratio=self.settings.alert_disk_free_ratio,
            disk_size=shutil.disk_usage(data_dir).total if data_dir.exists() else None,
        )
        notifier = AlertNotifier(self.db, self.settings.alert_webhook_url, self.clock, sleep=self.alert_sleep)
        return notifier.update(conditions)

    def history(self, hours: int = 24) -> HealthHistory:
        """The snapshots of the last `hours` (1 to MAX_HOURS), oldest first."""
        if not 1 <= hours <= MAX_HOURS:
            raise InvalidInput(f"hours must be between 1 and {MAX_HOURS}, not {hours}")
        return HealthHistory(hours=hours, snapshots=read_history(self.db, self.clock.now() - timedelta(hours=hours)))

    def health(self) -> HealthReport:
        """Liveness of each component; `status` is ok, degraded (serving, something behind) or down."""
        outbox = self.applier.counts()
        retrying, last_error = self.applier.failing()
        worker = self.changes.worker
        components = HealthComponents(
            database=self.database_health(),
            vector_index=VectorIndexHealth(
                # Degraded while writes wait on the index (it failed, they retry) or were dead-lettered:
                # the documents are stored, their chunks pending, and searchable once the index catches up.
                status="degraded" if outbox[OpState.DEAD] or retrying else "ok",
                backend=self.vectors.name,
                pending_operations=outbox[OpState.PENDING],
                retrying_operations=retrying,
                last_error=last_error,
                dead_operations=outbox[OpState.DEAD],
                replica=ReplicaPosition(owner=self.applier.owner, watermark=self.applier.watermark),
            ),
            cache=CacheHealth.model_validate(self.cache.status()),
            events=EventsHealth.model_validate(self.bus.status()) if self.bus is not None else None,
            embedder=EmbedderHealth(status="ok", backend=self.embedder.backend, model=self.embedder.model),
            sync_worker=None
            if worker is None
            else SyncWorkerHealth(
                status="ok" if worker.alive and not worker.last_error else "degraded", last_error=worker.last_error
            ),
            # Degraded while Redis fails: each server process then counts alone, so a key gets its limit once
            # per process (security/ratelimit.py).
            rate_limiter=RateLimiterHealth.model_validate(
                {**self.rate_limiter.status(), "usage": self.usage_writer.health()}
            ),
        )
        statuses = components.statuses()
        counters = self.searcher.counters
        return HealthReport(
            status="down" if "down" in statuses else "degraded" if "degraded" in statuses else "ok",
            components=components,
            search=SearchHealth(
                searches=counters.searches,
                dropped_hits=counters.dropped_hits,
                orphan_hits=counters.orphan_hits,
                lexical_backend=self.lexical.name,
                analyzer=self.settings.lexical_analyzer,
                query_log=QueryLogHealth(
                    enabled=self.recorder.enabled, written=self.recorder.written, dropped=self.recorder.dropped
                ),
            ),
        )

    def database_health(self) -> DatabaseHealth:
        started = time.perf_counter()
        try:
            with self.db.read() as s:
                s.execute(text("SELECT 1"))
                revision = Migrator(self.db.engine).current()
        except Exception as exc:
            return DatabaseHealth(status="down", error=f"{type(exc).__name__}: {exc}")
        return DatabaseHealth(
            status="ok",
            dialect=self.db.engine.dialect.name,
            revision=revision,
            latency_ms=round((time.perf_counter() - started) * 1000, 3),
        )
