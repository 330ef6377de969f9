"""Slow statements: every SQL statement slower than RAGSTORE_SLOW_QUERY_MS, counted by fingerprint.

A fingerprint is the statement with its values taken out (numbers and quoted strings become `?`, a list of
placeholders one `?`, spacing one space), so no value a user sent (a name, a query, a key) is ever stored,
and the same statement with other values counts as one. Each process adds up its slow statements in memory
(the engine's `after_cursor_execute` event must not write), and `flush` adds them to `slow_statements` (the
count, the total and the longest time), which `ragstore db slow` reads: the server flushes each minute and
when it stops.
"""

from __future__ import annotations

import hashlib
import re
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from ragstore.clock import as_utc
from ragstore.db.health_models import SlowStatement

__all__ = ["MAX_STATEMENT_CHARS", "SlowStatementLog", "SlowStatementStats", "fingerprint", "read_slow"]

MAX_STATEMENT_CHARS = 2000
_STRING = re.compile(r"'(?:[^']|'')*'")
_NUMBER = re.compile(r"(?<![\w$.])-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?\b")
_PLACEHOLDER = re.compile(r"%\(\w+\)s|\$\d+|(?<!:):(?!:)\w+|\?")
_LIST = re.compile(r"\(\s*\?(?:\s*,\s*\?)*\s*\)")
_SPACE = re.compile(r"\s+")


def fingerprint(statement: str) -> tuple[str, str]:
    """(the fingerprint's id, its text): the statement with every value and placeholder made `?`."""
    text = _STRING.sub("?", statement)
    text = _PLACEHOLDER.sub("?", text)
    text = _NUMBER.sub("?", text)
    text = _LIST.sub("(?)", text)
    text = _SPACE.sub(" ", text).strip()[:MAX_STATEMENT_CHARS]
    return hashlib.sha256(text.encode()).hexdigest()[:32], text


@dataclass(frozen=True)
class SlowStatementStats:
    fingerprint: str
    statement: str
    dialect: str
    count: int
    total_ms: float
    max_ms: float
    mean_ms: float
    last_seen: datetime


@dataclass
class _Pending:
    statement: str
    count: int = 0
    total_ms: float = 0.0
    max_ms: float = 0.0


class SlowStatementLog:
    """This process's slow statements since the last flush."""

    def __init__(self, threshold_ms: float, dialect: str) -> None:
        self.threshold_ms = threshold_ms  # 0: off
        self.dialect = dialect
        self._pending: dict[str, _Pending] = {}
        self._lock = threading.Lock()

    def note(self, statement: str, seconds: float) -> None:
        """Called for every statement; keeps the slow ones (cheap for the others: one comparison)."""
        ms = seconds * 1000
        if self.threshold_ms <= 0 or ms < self.threshold_ms:
            return
        key, text = fingerprint(statement)
        with self._lock:
            entry = self._pending.setdefault(key, _Pending(text))
            entry.count += 1
            entry.total_ms += ms
            entry.max_ms = max(entry.max_ms, ms)

    def pending(self) -> int:
        with self._lock:
            return len(self._pending)

    def flush(self, s: Session, now: datetime) -> int:
        """Add what was kept to `slow_statements` in the caller's transaction; how many fingerprints."""
        with self._lock:
            pending, self._pending = self._pending, {}
        if not pending:
            return 0
        sqlite = s.get_bind().dialect.name == "sqlite"
        insert: Any = sqlite_insert if sqlite else pg_insert
        greatest = func.max if sqlite else func.greatest
        for key, entry in sorted(pending.items()):
            stmt = insert(SlowStatement).values(
                fingerprint=key,
                statement=entry.statement,
                dialect=self.dialect,
                count=entry.count,
                total_ms=entry.total_ms,
                max_ms=entry.max_ms,
                first_seen=now,
                last_seen=now,
            )
            s.execute(
                stmt.on_conflict_do_update(
                    index_elements=[SlowStatement.fingerprint],
                    set_={
                        "count": SlowStatement.count + stmt.excluded.count,
                        "total_ms": SlowStatement.total_ms + stmt.excluded.total_ms,
                        "max_ms": greatest(SlowStatement.max_ms, stmt.excluded.max_ms),
                        "last_seen": stmt.excluded.last_seen,
                    },
                )
            )
        return len(pending)


def read_slow(s: Session, limit: int) -> list[SlowStatementStats]:
    """The slow statements by total time, most first."""
    rows = s.scalars(select(SlowStatement).order_by(SlowStatement.total_ms.desc()).limit(limit)).all()
    return [
        SlowStatementStats(
            fingerprint=r.fingerprint,
            statement=r.statement,
            dialect=r.dialect,
            count=r.count,
            total_ms=round(r.total_ms, 3),
            max_ms=round(r.max_ms, 3),
            mean_ms=round(r.total_ms / r.count, 3) if r.count else 0.0,
            last_seen=as_utc(r.last_seen),
        )
        for r in rows
    ]
