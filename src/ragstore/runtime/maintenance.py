"""`ragstore maintenance optimize|cleanup`: keeping the database in shape over months.

`optimize` refreshes what the planners and the full-text indexes work from: on SQLite `ANALYZE`, `PRAGMA
optimize`, each FTS5 index merged (`optimize`), an incremental vacuum where the file allows one, and a WAL
checkpoint that truncates the log; on PostgreSQL `VACUUM (ANALYZE)` of every table of the schema and `REINDEX
CONCURRENTLY` of the tables whose dead rows passed REINDEX_DEAD_RATIO (their indexes grew with them).
`cleanup` removes what has outlived its use: expired sessions, usage, query-log and health rows past their
retentions, finished outbox operations every replica is past, dead jobs older than DEAD_JOB_DAYS, and the
embeddings of a collection model that no chunk holds any more (an ingest that meant to reuse one removed
meanwhile embeds it again: documents/write_guards.py). `optimize` also compacts the embedded vector index and
measures the search breadth of the collections that are due for it (indexing/tuning.py).

Each run is a row of the run ledger (`maintenance_runs`: trigger, state, what each step did) and an audit
record; `--dry-run` counts what would be done and changes nothing. The server runs cleanup daily and optimize
weekly (RAGSTORE_MAINTENANCE_*_SCHEDULE); a schedule's slot lets one process of several run it.
"""

from __future__ import annotations

import re
import time
from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import delete, exists, func, select, text
from sqlalchemy.engine import Connection

from ragstore.db.engine import Database
from ragstore.db.health_models import MaintenanceRun, SystemHealth
from ragstore.db.models import Collection, DocumentChunk, Embedding, Job, OpState, QueryLog, RunState, SyncOperation
from ragstore.db.runs import RunLedger
from ragstore.db.security_models import ApiUsageLog, UserSession
from ragstore.db.stats import database_stats
from ragstore.ops.history import prune_history
from ragstore.schemas import MaintenanceRunInfo
from ragstore.sync.jobs import JobState
from ragstore.vectors.embedded import COMPACT_RATIO, EmbeddedVectorIndex
from ragstore.vectors.unopened import UnopenedIndex

if TYPE_CHECKING:
    from ragstore.service import RagStore

__all__ = [
    "DEAD_JOB_DAYS",
    "REINDEX_DEAD_RATIO",
    "Action",
    "MaintenanceResult",
    "MaintenanceStep",
    "maintenance_history",
    "maintenance_run",
    "run_maintenance",
]

Action = Literal["optimize", "cleanup"]
DEAD_JOB_DAYS = 30  # a dead job's row (its error) is kept this long for a person to read
REINDEX_DEAD_RATIO = 0.2  # PostgreSQL: reindex a table whose dead rows were this share of it, and more than
REINDEX_MIN_DEAD = 1000  # this many


@dataclass(frozen=True)
class MaintenanceStep:
    name: str
    count: int | None  # rows removed, tables or indexes processed (None: the step is not a count)
    note: str


@dataclass(frozen=True)
class MaintenanceResult:
    run_id: int
    action: str
    dry_run: bool
    steps: list[MaintenanceStep]
    duration_ms: float


def run_maintenance(
    store: RagStore, action: Action, *, dry_run: bool = False, trigger: str = "cli", slot: str | None = None
) -> MaintenanceResult | None:
    """One recorded, audited run; None when another process took this scheduled slot."""
    ledger = RunLedger(store.db, MaintenanceRun)
    run_id = ledger.start(trigger=trigger, slot=slot, action=action, dry_run=dry_run)
    if run_id is None:
        return None
    started = time.perf_counter()
    try:
        with store.components.audit_trail.recorded(f"maintenance.{action}", target="*", dry_run=dry_run) as done:
            steps = _optimize(store, dry_run) if action == "optimize" else _cleanup(store, dry_run)
            done["steps"] = {s.name: s.count for s in steps}
    except Exception as exc:
        ledger.finish(
            run_id, state=RunState.FAILED, duration_ms=(time.perf_counter() - started) * 1000, error=str(exc)[:2000]
        )
        raise
    duration = (time.perf_counter() - started) * 1000
    ledger.finish(run_id, state=RunState.COMPLETE, duration_ms=duration, details={"steps": [asdict(s) for s in steps]})
    return MaintenanceResult(run_id, action, dry_run, steps, round(duration, 1))


def maintenance_history(db: Database, limit: int = 50) -> list[MaintenanceRunInfo]:
    """The newest runs first, with what each step did (the admin page and GET /admin/maintenance)."""
    return RunLedger(db, MaintenanceRun).history(_run_info, limit=limit)


def maintenance_run(db: Database, run_id: int) -> MaintenanceRunInfo | None:
    return RunLedger(db, MaintenanceRun).get(run_id, _run_info)


def _run_info(run: MaintenanceRun) -> MaintenanceRunInfo:
    return MaintenanceRunInfo.model_validate(
        {
            "id": run.id,
            "action": run.action,
            "dry_run": run.dry_run,
            "trigger": run.trigger,
            "state": run.state,
            "started_at": run.started_at,
            "finished_at": run.finished_at,
            "duration_ms": run.duration_ms,
            "steps": (run.details or {}).get("steps", []),
            "error": run.error,
        }
    )


# -- optimize --------------------------------------------------------------------------------------------------
def _optimize(store: RagStore, dry_run: bool) -> list[MaintenanceStep]:
    steps = _optimize_sqlite(store, dry_run) if store.db.is_sqlite else _optimize_postgres(store, dry_run)
    steps.append(_compact_index(store, dry_run))
    steps.append(_tune_index(store, dry_run))
    return steps


def _tune_index(store: RagStore, dry_run: bool) -> MaintenanceStep:
    """The search breadth measured again where it is due (indexing/tuning.py). Only a process that holds the
    vector index can measure it: a command beside the server opens none, and says who does."""
    if isinstance(store.components.vectors, UnopenedIndex):
        note = (
            "the server measures its index (a check every 10 minutes, its weekly optimize); `ragstore index tune` now"
        )
        return MaintenanceStep("search_tuning", None, note)
    if dry_run:
        due = [c.collection for c in store.index.tuning().collections if c.due]
        return MaintenanceStep("search_tuning", len(due), f"would measure {', '.join(due) or 'no collection'}")
    tuned = [c for c in store.index.tune_due().collections if c.state == "tuned"]
    note = ", ".join(f"{c.collection}: ef_search {c.ef_search}" for c in tuned) or "no collection was due"
    return MaintenanceStep("search_tuning", len(tuned), note)


def _compact_index(store: RagStore, dry_run: bool) -> MaintenanceStep:
    """The embedded index's graphs rebuilt where removed vectors hold COMPACT_RATIO of the slots. Only the
    process that holds the index can: the server (its schedule, the admin page), not a command beside it."""
    vectors = store.components.vectors
    if isinstance(vectors, EmbeddedVectorIndex):
        done = vectors.compact(dry_run=dry_run)
        removed = sum(c.nodes - c.live for c in done)
        if not done:
            note = f"no collection has {COMPACT_RATIO:.0%} or more removed slots"
        elif dry_run:
            note = f"would rebuild {len(done)} collections, dropping {removed:,} removed slots"
        else:
            kept = [c for c in done if not c.compacted]
            note = f"rebuilt {len(done) - len(kept)} collections, dropping {removed:,} removed slots" + (
                f"; {len(kept)} changed while rebuilt, left for the next run" if kept else ""
            )
        return MaintenanceStep("vector_index", len([c for c in done if c.compacted or dry_run]), note)
    if store.settings.vector_backend == "embedded":
        note = "the server holds the embedded index: its weekly optimize (or the admin page's button) compacts it"
    else:
        note = f"{store.settings.vector_backend} compacts its own segments"
    return MaintenanceStep("vector_index", None, note)


def _optimize_sqlite(store: RagStore, dry_run: bool) -> list[MaintenanceStep]:
    # Each statement in its own implicit transaction: ANALYZE, checkpoints and vacuums want none around them.
    with store.db.engine.connect().execution_options(sqlite_begin="NONE") as conn:
        fts = [
            str(name)
            for name, sql in conn.exec_driver_sql("SELECT name, sql FROM sqlite_schema WHERE type = 'table'")
            if re.search(r"USING\s+fts5\s*\(", str(sql or ""), re.IGNORECASE)
        ]
        auto_vacuum = int(conn.exec_driver_sql("PRAGMA auto_vacuum").scalar() or 0)
        free_pages = int(conn.exec_driver_sql("PRAGMA freelist_count").scalar() or 0)
        if dry_run:
            return [
                MaintenanceStep("analyze", None, "would run ANALYZE"),
                MaintenanceStep("optimize", None, "would run PRAGMA optimize"),
                MaintenanceStep("fts_optimize", len(fts), f"would merge {', '.join(fts) or 'no FTS5 index'}"),
                MaintenanceStep("incremental_vacuum", free_pages, _vacuum_note(auto_vacuum, free_pages, dry_run)),
                MaintenanceStep("wal_checkpoint", None, "would checkpoint and truncate the WAL"),
            ]
        conn.exec_driver_sql("ANALYZE")
        conn.exec_driver_sql("PRAGMA optimize")
        for table in fts:
            conn.exec_driver_sql(f'INSERT INTO "{table}"("{table}") VALUES (\'optimize\')')
        if auto_vacuum == 2:
            conn.exec_driver_sql("PRAGMA incremental_vacuum")
        busy, log_pages, moved = conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").one()
    return [
        MaintenanceStep("analyze", None, "planner statistics refreshed"),
        MaintenanceStep("optimize", None, "PRAGMA optimize"),
        MaintenanceStep("fts_optimize", len(fts), f"merged {', '.join(fts) or 'no FTS5 index'}"),
        MaintenanceStep("incremental_vacuum", free_pages, _vacuum_note(auto_vacuum, free_pages, dry_run)),
        MaintenanceStep(
            "wal_checkpoint",
            int(moved),
            "WAL checkpointed and truncated" if not busy else f"busy: {moved} of {log_pages} pages (readers active)",
        ),
    ]


def _vacuum_note(auto_vacuum: int, free_pages: int, dry_run: bool) -> str:
    if auto_vacuum == 2:
        return f"{'would free' if dry_run else 'freed'} {free_pages} free pages"
    return (
        f"{free_pages} free pages stay in the file for reuse: auto_vacuum is not incremental here (a full "
        "VACUUM rewrites the file; run it with the server stopped)"
    )


def _optimize_postgres(store: RagStore, dry_run: bool) -> list[MaintenanceStep]:
    stats = database_stats(store.db)
    tables = [t.name for t in stats.tables]
    bloated = [
        t.name
        for t in stats.tables
        if (t.bloat_ratio or 0) >= REINDEX_DEAD_RATIO and (t.dead_rows or 0) > REINDEX_MIN_DEAD
    ]
    if not dry_run:
        with store.db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            for table in tables:
                conn.execute(text(f'VACUUM (ANALYZE) "{table}"'))
            for table in bloated:
                _reindex(conn, table)
    verb = "would " if dry_run else ""
    return [
        MaintenanceStep("vacuum_analyze", len(tables), f"{verb}VACUUM (ANALYZE) every table of the schema"),
        MaintenanceStep("reindex", len(bloated), f"{verb}REINDEX CONCURRENTLY {', '.join(bloated) or 'nothing'}"),
    ]


def _reindex(conn: Connection, table: str) -> None:
    conn.execute(text(f'REINDEX TABLE CONCURRENTLY "{table}"'))


# -- cleanup ---------------------------------------------------------------------------------------------------
def _cleanup(store: RagStore, dry_run: bool) -> list[MaintenanceStep]:
    settings, now = store.settings, store.clock.now()
    usage_cutoff = now - timedelta(days=settings.usage_retain_days)
    query_cutoff = now - timedelta(days=settings.query_log_retain_days)
    health_cutoff = now - timedelta(days=settings.health_retention_days)
    jobs_cutoff = now - timedelta(days=DEAD_JOB_DAYS)
    orphaned = (
        Embedding.model.in_(select(Collection.embedding_model))
        & (Embedding.model != settings.companion_model)
        & ~exists().where(DocumentChunk.content_hash == Embedding.content_hash)
    )
    dead_jobs = (Job.state == JobState.DEAD) & (Job.updated_at < jobs_cutoff)
    with store.db.read() as s:

        def count(*where: Any) -> int:
            return int(s.scalar(select(func.count()).where(*where)) or 0)

        found = {
            "expired_sessions": count(UserSession.expires_at < now),
            "usage_rows": count(ApiUsageLog.created_at < usage_cutoff),
            "query_log_rows": count(QueryLog.created_at < query_cutoff),
            "health_rows": count(SystemHealth.taken_at < health_cutoff),
            "finished_outbox": count(SyncOperation.state == OpState.DONE),
            "dead_jobs": count(dead_jobs),
            "orphan_embeddings": count(orphaned),
        }
    if dry_run:
        return [MaintenanceStep(name, n, f"would remove up to {n}") for name, n in found.items()]
    done = {
        "expired_sessions": store.users.cleanup_sessions().deleted,
        "usage_rows": store.usage.maintain().rows_deleted,
        "query_log_rows": store.components.recorder.prune(),
        "health_rows": prune_history(store.db, health_cutoff),
        "finished_outbox": store.components.applier.prune_done(),
        "dead_jobs": store.db.write(lambda s: _deleted(s.execute(delete(Job).where(dead_jobs)))),
        # Safe beside a running ingest: its transaction checks the stored embeddings it reuses and embeds
        # again any removed since it looked (documents/write_guards.py).
        "orphan_embeddings": store.db.write(lambda s: _deleted(s.execute(delete(Embedding).where(orphaned)))),
    }
    notes = {
        "finished_outbox": f"of {found['finished_outbox']} finished: those every replica is past and older than "
        f"RAGSTORE_SYNC_RETAIN_S ({settings.sync_retain_s:.0f} s)",
        "usage_rows": "rows past RAGSTORE_USAGE_RETAIN_DAYS (PostgreSQL drops whole monthly partitions besides)",
        "orphan_embeddings": "stored embeddings of the collections' models that no chunk holds any more",
    }
    return [MaintenanceStep(name, n, notes.get(name, "removed")) for name, n in done.items()]


def _deleted(result: Any) -> int:
    return int(result.rowcount or 0)
