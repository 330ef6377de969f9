"""The query log and chunk return counts, written in batches off the search path.

A search appends one entry to an in-memory buffer (a cached search at thousands per second must not wait
on a SQL write); a background thread flushes the buffer every `interval_s` in one transaction: the
`query_log` rows, and `chunk_analytics` counters incremented by upsert. The buffer is bounded: under a
backlog the oldest entries are dropped and counted, never the search slowed. Entries still buffered when
the process dies are lost; the log is for analytics, not for audit.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, cast

from sqlalchemy import DateTime, Table, bindparam, delete, insert, select, text
from sqlalchemy.orm import Session

from ragstore.db.engine import Database
from ragstore.db.models import Collection, QueryLog, utcnow

__all__ = ["QueryRecorder"]

log = logging.getLogger(__name__)
QUERY_LOG = cast(Table, QueryLog.__table__)
MAX_BUFFER = 100_000
PRUNE_EVERY_S = 3600.0

# Counters of chunks that still exist: a chunk deleted since its search is skipped, not an FK error.
_COUNT_RETURNS = text(
    "INSERT INTO chunk_analytics "
    "(chunk_id, collection_id, returned_count, relevant_count, irrelevant_count, last_returned_at) "
    "SELECT id, collection_id, :n, 0, 0, :at FROM document_chunks WHERE id = :chunk_id "
    "ON CONFLICT (chunk_id) DO UPDATE SET returned_count = chunk_analytics.returned_count + excluded.returned_count, "
    "last_returned_at = excluded.last_returned_at"
).bindparams(bindparam("at", type_=DateTime(timezone=True)))


@dataclass(frozen=True)
class _Entry:
    collection_id: int
    query: str | None
    mode: str
    k: int
    result_count: int
    latency_ms: float
    cache_hit: bool
    filtered: bool
    chunk_ids: tuple[int, ...]
    at: Any


class QueryRecorder:
    def __init__(self, db: Database, *, enabled: bool = True, retain_days: int = 30, interval_s: float = 2.0) -> None:
        self.db = db
        self.enabled = enabled
        self.retain_days = retain_days
        self.interval_s = interval_s
        self.dropped = 0
        self.written = 0
        self._buffer: deque[_Entry] = deque()
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_prune = 0.0

    def record(
        self,
        collection_id: int,
        query: str | None,
        *,
        mode: str,
        k: int,
        chunk_ids: tuple[int, ...],
        latency_ms: float,
        cache_hit: bool,
        filtered: bool,
    ) -> None:
        if not self.enabled:
            return
        entry = _Entry(
            collection_id, query, mode, k, len(chunk_ids), latency_ms, cache_hit, filtered, chunk_ids, utcnow()
        )
        with self._lock:
            if len(self._buffer) >= MAX_BUFFER:
                self._buffer.popleft()
                self.dropped += 1
            self._buffer.append(entry)
        if self._thread is None:
            self._start()

    def _start(self) -> None:
        with self._lock:
            if self._thread is not None:
                return
            self._thread = threading.Thread(target=self._run, name="ragstore-query-log", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.flush()
            except Exception:
                log.exception("could not write the query log; will retry")

    def flush(self) -> int:
        """Write what is buffered now; returns the entries written."""
        with self._flush_lock:
            with self._lock:
                entries = list(self._buffer)
                self._buffer.clear()
            if entries:
                try:
                    self.db.write(lambda s: self._write(s, entries))
                except Exception:
                    with self._lock:  # keep them for the next flush, newest last, within the bound
                        self._buffer.extendleft(reversed(entries[-(MAX_BUFFER - len(self._buffer)) :]))
                    raise
                self.written += len(entries)
            if time.monotonic() - self._last_prune > PRUNE_EVERY_S:
                self._last_prune = time.monotonic()
                self.prune()
            return len(entries)

    def _write(self, s: Session, entries: list[_Entry]) -> None:
        # A collection deleted since its search leaves its entries out: its rows would fail the foreign key,
        # and since a failed batch is kept for the next flush, they would stop the log for every collection.
        live = set(s.scalars(select(Collection.id).where(Collection.id.in_({e.collection_id for e in entries}))))
        entries = [e for e in entries if e.collection_id in live]
        if not entries:
            return
        s.execute(
            insert(QUERY_LOG),
            [
                {
                    "collection_id": e.collection_id,
                    "query": e.query,
                    "mode": e.mode,
                    "k": e.k,
                    "result_count": e.result_count,
                    "latency_ms": e.latency_ms,
                    "cache_hit": e.cache_hit,
                    "filtered": e.filtered,
                    "created_at": e.at,
                }
                for e in entries
            ],
        )
        returned = Counter(chunk_id for e in entries for chunk_id in e.chunk_ids)
        if returned:
            now = utcnow()
            s.execute(_COUNT_RETURNS, [{"chunk_id": c, "n": n, "at": now} for c, n in sorted(returned.items())])

    def prune(self) -> int:
        """Drop query-log rows older than the retention."""
        cutoff = utcnow() - timedelta(days=self.retain_days)
        return int(self.db.write(lambda s: s.execute(delete(QueryLog).where(QueryLog.created_at < cutoff)).rowcount))  # type: ignore[attr-defined]

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        try:
            self.flush()
        except Exception:
            log.exception("could not write the last query-log entries")
