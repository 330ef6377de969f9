"""PostgreSQL's planner statistics for ragstore's busiest tables, refreshed when the server's autovacuum has not.

The lookups of a bulk load (`embeddings` by model and up to 900 content hashes, chunks and documents by id)
are planned from `pg_statistic`. A table that was never analysed has none: a server with autovacuum off
(this project's test server is one), or a table a load outgrew between autovacuum's runs. The planner then
took `model = $1` for selective, scanned the primary key on the model alone and checked each of the model's
rows against the list: 0.4 s a lookup at 300,000 embeddings, 1.4 s at 1,000,000, so a bulk load's index
apply slowed as the table grew (480 chunks/s at 600k, 1,500 once analysed, bench/scale.py). Rewriting the
lookups did not make them independent of statistics (a semi-join over `unnest` still chose a hash join over
the model's rows when the estimate was small), so the statistics themselves are kept: between applied operations,
at most once per INTERVAL_S, the tables whose rows changed by more than SHARE since their last analysis (by
anyone, autovacuum included) are analysed. One read of `pg_stat_user_tables`, and an ANALYZE (a sample of
30,000 rows: about a second at 1M chunks) only where due; a lock held elsewhere (a running autovacuum) is
waited for LOCK_TIMEOUT at most, and the table is skipped until the next check. SQLite's planner uses the
primary key for these lookups without statistics: nothing to do there.
"""

from __future__ import annotations

import logging

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from ragstore.clock import SYSTEM_CLOCK, Clock
from ragstore.db.engine import Database

__all__ = ["INTERVAL_S", "PlannerStatistics"]

log = logging.getLogger(__name__)

TABLES = ("embeddings", "document_chunks", "documents", "chunk_lexemes", "sync_operations")
INTERVAL_S = 60.0
SHARE = 0.2  # rows changed since the last analysis, as a share of the live rows
MIN_CHANGED = 1_000  # a small table is planned well enough without: not worth an ANALYZE
LOCK_TIMEOUT = "2s"

_DUE = text(
    "SELECT s.relname FROM pg_stat_user_tables s "
    "JOIN unnest(CAST(:tables AS text[])) AS t(name) ON s.relid = to_regclass(t.name) "
    "WHERE s.n_mod_since_analyze > greatest(:least, :share * s.n_live_tup)"
)


class PlannerStatistics:
    """Checks, at most once per INTERVAL_S of its clock, which tables need ANALYZE, and runs it on them."""

    def __init__(self, db: Database, clock: Clock = SYSTEM_CLOCK) -> None:
        self.db = db
        self.clock = clock
        self._next_check: float | None = None

    def refresh_if_due(self) -> list[str]:
        """The tables analysed now (none on SQLite, between checks, or when all are fresh)."""
        if self.db.is_sqlite:
            return []
        now = self.clock.monotonic()
        if self._next_check is not None and now < self._next_check:
            return []
        self._next_check = now + INTERVAL_S
        try:
            due = [
                str(r[0]) for r in self.db.fetch(_DUE, {"tables": list(TABLES), "least": MIN_CHANGED, "share": SHARE})
            ]
        except DBAPIError as exc:  # statistics are an optimisation: never a reason to fail an apply
            log.warning("could not read the tables' statistics state: %s", exc)
            return []
        done = []
        for name in due:
            try:
                with self.db.engine.begin() as conn:
                    conn.exec_driver_sql(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
                    conn.exec_driver_sql(f'ANALYZE "{name}"')
            except DBAPIError as exc:
                log.info("ANALYZE %s skipped until the next check: %s", name, exc)
                continue
            done.append(name)
        if done:
            log.info("analysed %s: their rows changed by more than %d %% since their statistics", done, SHARE * 100)
        return done
