"""Usage accounting: one `api_usage_logs` row per HTTP request, written behind the request, and summaries.

A request never writes: the metering middleware hands its row to `UsageWriter.record`, an append to a
bounded in-memory queue. A background thread flushes the queue every second, or as soon as `batch_rows`
rows wait, in one multi-row INSERT; the store's close flushes what is left. When the queue is full (the
database stalls, or cannot keep up) a row is dropped and counted rather than blocking or failing the request:
accounting is a record of the service, not a condition of it. Health shows the queue, written and dropped.

`UsageService` is `store.usage`: the summary by day, key and route (`ragstore usage`, `GET /v1/usage`), the
retention job (security/usage_retention.py) and the server's rate limiter (security/ratelimit.py).
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from typing import Any

from sqlalchemy import case, func, insert, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from ragstore.clock import Clock
from ragstore.db.engine import Database
from ragstore.db.security_models import ApiKey, ApiUsageLog
from ragstore.errors import InvalidInput, NotFound
from ragstore.schemas import UsageHealth, UsageMaintenance, UsageRow, UsageSummary, UsageTotals
from ragstore.security.ratelimit import RateLimiter
from ragstore.security.usage_retention import maintain_usage_table
from ragstore.valid_text import ascii_digits

__all__ = ["MAX_SUMMARY_DAYS", "MAX_SUMMARY_ROWS", "UsageService", "UsageWriter"]

log = logging.getLogger(__name__)
MAX_SUMMARY_DAYS = 3650
MAX_SUMMARY_ROWS = 10_000


class UsageWriter:
    """The bounded queue of usage rows and the thread that writes them in batches."""

    def __init__(
        self,
        db: Database,
        *,
        capacity: int = 20_000,
        batch_rows: int = 500,
        interval_s: float = 1.0,
        background: bool = True,  # False: only `flush()` writes (a test that drives the writer itself)
    ) -> None:
        self.db = db
        self.background = background
        self.capacity = capacity
        self.batch_rows = batch_rows
        self.interval_s = interval_s
        self.written = 0
        self.dropped = 0
        self.last_error: str | None = None
        self._queue: deque[dict[str, Any]] = deque()
        self._wake = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._flush_lock = threading.Lock()

    def record(self, row: dict[str, Any]) -> None:
        """Queue one row (the columns of `api_usage_logs` but `id`); never blocks, never raises."""
        if len(self._queue) >= self.capacity or self._stopping:
            self.dropped += 1
            return
        self._queue.append(row)
        if self._thread is None and self.background:
            self._start()
        if len(self._queue) >= self.batch_rows:
            self._wake.set()

    @property
    def queued(self) -> int:
        return len(self._queue)

    def _start(self) -> None:
        with self._start_lock:
            if self._thread is None and not self._stopping:
                self._thread = threading.Thread(target=self._run, name="ragstore-usage-writer", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while not self._stopping:
            self._wake.wait(self.interval_s)
            self._wake.clear()
            self.flush()

    def flush(self) -> int:
        """Write every queued row now, `batch_rows` to an INSERT; the number written."""
        total = 0
        with self._flush_lock:
            while self._queue:
                batch = [self._queue.popleft() for _ in range(min(self.batch_rows, len(self._queue)))]
                try:
                    self.db.write(partial(_insert, batch))
                except Exception as exc:  # the database is down or refused: count the loss, keep serving
                    self.dropped += len(batch)
                    if self.last_error is None:
                        log.warning("could not write %d usage rows (%s); they are dropped", len(batch), exc)
                    self.last_error = f"{type(exc).__name__}: {exc}"
                    continue
                self.written += len(batch)
                total += len(batch)
                self.last_error = None
        return total

    def close(self) -> None:
        """Stop the thread and write what is queued (the store's close calls it)."""
        self._stopping = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(10)
        self.flush()

    def health(self) -> UsageHealth:
        return UsageHealth(queued=self.queued, written=self.written, dropped=self.dropped, last_error=self.last_error)


def _insert(rows: list[dict[str, Any]], session: Session) -> None:
    """One INSERT statement for the whole batch, executed with many parameter sets (SQLite's executemany;
    on PostgreSQL SQLAlchemy folds them into multi-row VALUES). Not `.values(rows)`: compiling a statement
    of 500 x 13 literals costs the writer thread ~10 ms of the GIL per batch, which the requests pay."""
    session.execute(insert(ApiUsageLog), rows)


def _day(dialect: str) -> ColumnElement[str]:
    """The UTC calendar day of a row as YYYY-MM-DD (SQLite keeps UTC text; PostgreSQL a timestamptz)."""
    if dialect == "postgresql":
        return func.to_char(func.timezone("UTC", ApiUsageLog.created_at), "YYYY-MM-DD")
    return func.substr(ApiUsageLog.created_at, 1, 10)


@dataclass(kw_only=True, slots=True)
class UsageService:
    """`store.usage`: what was called, by whom, at what cost; and the limits the server applies."""

    db: Database
    clock: Clock
    usage_writer: UsageWriter
    rate_limiter: RateLimiter
    retain_days: int

    def record(self, row: dict[str, Any]) -> None:
        self.usage_writer.record(row)

    def flush(self) -> int:
        return self.usage_writer.flush()

    def key_id_of(self, key: str) -> int:
        """The `api_keys.id` of a key given by that id or by its public id (as `ragstore keys list` shows)."""
        text = key.strip()
        if ascii_digits(text):
            return int(text)
        if not text or len(text) > 64:
            raise InvalidInput("a key is given by its id or its public key id")
        with self.db.read() as s:
            found = s.scalar(select(ApiKey.id).where(ApiKey.key_id == text))
        if found is None:
            raise NotFound(f"no API key {text!r}")
        return int(found)

    def summary(self, *, key: str | None = None, days: int = 7, limit: int = 1000) -> UsageSummary:
        """Requests by UTC day, key (or user) and route over the last `days`, busiest first within a day."""
        if not 1 <= days <= MAX_SUMMARY_DAYS:
            raise InvalidInput(f"days must be between 1 and {MAX_SUMMARY_DAYS}")
        if not 1 <= limit <= MAX_SUMMARY_ROWS:
            raise InvalidInput(f"limit must be between 1 and {MAX_SUMMARY_ROWS}")
        key_id = self.key_id_of(key) if key is not None else None
        until = self.clock.now()
        since = until - timedelta(days=days)
        t = ApiUsageLog
        where = [t.created_at >= since, t.created_at <= until]
        if key_id is not None:
            where.append(t.api_key_id == key_id)
        measures = (
            func.count().label("requests"),
            func.sum(case((t.status >= 400, 1), else_=0)).label("errors"),
            func.sum(case((t.status == 429, 1), else_=0)).label("rate_limited"),
            func.coalesce(func.sum(t.request_bytes), 0).label("request_bytes"),
            func.coalesce(func.sum(t.response_bytes), 0).label("response_bytes"),
            func.coalesce(func.sum(t.embedding_calls), 0).label("embedding_calls"),
            func.coalesce(func.sum(t.embedding_tokens), 0).label("embedding_tokens"),
        )
        day = _day(self.db.engine.dialect.name).label("day")
        groups = (day, t.api_key_id, t.user_id, t.method, t.route)
        query = (
            select(
                *groups,
                *measures,
                func.avg(t.latency_ms).label("latency_ms_avg"),
                func.max(t.latency_ms).label("latency_ms_max"),
            )
            .where(*where)
            .group_by(*groups)
            .order_by(day.desc(), func.count().desc(), t.route, t.method)
            .limit(limit + 1)
        )
        with self.db.read() as s:
            found = s.execute(query).mappings().all()
            totals = s.execute(select(*measures).where(*where)).mappings().one()
            key_ids = {r["api_key_id"] for r in found if r["api_key_id"] is not None}
            keys = {
                row.id: (row.key_id, row.name)
                for row in s.execute(select(ApiKey.id, ApiKey.key_id, ApiKey.name).where(ApiKey.id.in_(key_ids)))
            }
        rows = [
            UsageRow(
                **{k: v for k, v in r.items() if k not in ("latency_ms_avg", "latency_ms_max")},
                key=keys.get(r["api_key_id"], (None, None))[0],
                key_name=keys.get(r["api_key_id"], (None, None))[1],
                latency_ms_avg=round(float(r["latency_ms_avg"] or 0), 3),
                latency_ms_max=round(float(r["latency_ms_max"] or 0), 3),
            )
            for r in found[:limit]
        ]
        return UsageSummary(
            since=since,
            until=until,
            days=days,
            api_key_id=key_id,
            totals=UsageTotals(**{k: int(v or 0) for k, v in totals.items()}),
            rows=rows,
            truncated=len(found) > limit,
        )

    def maintain(self) -> UsageMaintenance:
        """Create the coming months' partitions (PostgreSQL) and remove rows past RAGSTORE_USAGE_RETAIN_DAYS."""
        return maintain_usage_table(self.db, now=self.clock.now(), retain_days=self.retain_days)

    def close(self) -> None:
        self.usage_writer.close()
