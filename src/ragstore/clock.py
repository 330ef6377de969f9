"""Time as ragstore reads it: a small `Clock` the lease, backoff, retention and TTL code asks instead of `time`.

Leases, retries and cache entries are all "is it later than X yet?" questions. Asking one injected clock
(rather than `time.monotonic()` and `datetime.now()` scattered through the code) lets a test move time
forward by an hour in a microsecond with `ManualClock.advance`, instead of sleeping out a real lease.

Two readings, because they answer different questions:

- `monotonic()` — seconds on a clock that never jumps backwards; for intervals inside one process (cache
  TTLs, breaker back-off, staleness bounds). Only differences between two readings mean anything.
- `now()` — the wall time as an aware UTC datetime; for times written to the database and compared there
  (lease expiries, retry schedules, retention cut-offs), which other processes read too.

Every time the job queue and the outbox applier write or compare is taken from their clock in Python and
passed to SQL as a parameter (never the database's own `now()`), so the same code runs on SQLite and
PostgreSQL and a ManualClock governs both.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol, runtime_checkable

__all__ = ["SYSTEM_CLOCK", "Clock", "ManualClock", "SystemClock", "as_utc"]


@runtime_checkable
class Clock(Protocol):
    def monotonic(self) -> float:
        """Seconds from an arbitrary origin that only moves forward (compare two readings, never store one)."""

    def now(self) -> datetime:
        """The current wall time, timezone-aware, in UTC (what is written to and compared in the database)."""


class SystemClock:
    """The real clock: `time.monotonic()` and `datetime.now(UTC)`."""

    def monotonic(self) -> float:
        return time.monotonic()

    def now(self) -> datetime:
        return datetime.now(UTC)

    def __repr__(self) -> str:
        return "SystemClock()"


SYSTEM_CLOCK = SystemClock()


class ManualClock:
    """A clock that stands still until told to move: `advance(seconds)` moves both readings together.

    It starts at the real wall time of its creation (or `start`), so rows other code wrote with the real
    time just before are not in its future; rows written after it was created may be, until it is advanced.
    Thread-safe, so a worker thread and a test can share one.
    """

    def __init__(self, start: datetime | None = None, *, monotonic_start: float = 1000.0) -> None:
        start = datetime.now(UTC) if start is None else start
        if start.tzinfo is None:
            raise ValueError("ManualClock needs a timezone-aware start time")
        self._start = start.astimezone(UTC)
        self._monotonic_start = monotonic_start
        self._elapsed = 0.0
        self._lock = threading.Lock()

    def monotonic(self) -> float:
        with self._lock:
            return self._monotonic_start + self._elapsed

    def now(self) -> datetime:
        with self._lock:
            return self._start + timedelta(seconds=self._elapsed)

    def advance(self, seconds: float) -> None:
        """Move time forward (never back: a monotonic reading must not decrease)."""
        if seconds < 0:
            raise ValueError("a clock only moves forward")
        with self._lock:
            self._elapsed += seconds

    def __repr__(self) -> str:
        return f"ManualClock(now={self.now().isoformat()})"


def as_utc(moment: datetime) -> datetime:
    """A stored time as an aware UTC datetime: SQLite returns the UTC time it stored without its zone."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
