"""The run ledger: one record per run of a long job (a backup, a consistency check, later maintenance).

What a run record is, is said once, here: written `running` before the work starts and finished after,
so a process that dies mid-run leaves a `running` row (later marked `interrupted`), never a record that
looks complete; a scheduled run names its slot (e.g. the minute it was due), and the unique slot lets
exactly one of several processes take it. Each feature keeps its own table, a `RunRecord` with columns of
its own (backups: action, size; checks: counts, problems); the ledger is parametrised by that model.

The connection-level functions (`interrupt_running`, `complete_running`) serve a database that is not
the store's open one yet: a restore prepares its copy through them before the copy goes live.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from typing import Any, Generic, TypeVar

from sqlalchemy import ColumnElement, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ragstore.db.engine import Database
from ragstore.db.models import RunRecord, RunState, utcnow

__all__ = ["INTERRUPTED_ERROR", "RunLedger", "RunRecord", "RunState", "complete_running", "interrupt_running"]

R = TypeVar("R", bound=RunRecord)
T = TypeVar("T")

INTERRUPTED_ERROR = "the process running it stopped before it finished"


def interrupt_running(
    executor: Connection | Session,
    model: type[RunRecord],
    *,
    keep: int | None = None,
    error: str = INTERRUPTED_ERROR,
) -> int:
    """Mark `interrupted` the runs left `running` (but `keep`), in the caller's transaction; how many."""
    stmt = update(model).where(model.state == RunState.RUNNING)
    if keep is not None:
        stmt = stmt.where(model.id != keep)
    result = executor.execute(stmt.values(state=RunState.INTERRUPTED, error=error))
    return int(getattr(result, "rowcount", 0) or 0)


def complete_running(executor: Connection | Session, model: type[RunRecord], *where: ColumnElement[bool]) -> int:
    """Mark `complete`, finished now, the runs still `running` that match `where`; how many."""
    stmt = update(model).where(model.state == RunState.RUNNING, *where)
    result = executor.execute(stmt.values(state=RunState.COMPLETE, finished_at=utcnow()))
    return int(getattr(result, "rowcount", 0) or 0)


class RunLedger(Generic[R]):
    """The runs of one kind of job, in the table of `model`."""

    def __init__(self, db: Database, model: type[R]) -> None:
        self.db = db
        self.model = model

    def start(self, *, trigger: str, slot: str | None = None, **fields: Any) -> int | None:
        """A new `running` record with the table's own `fields`; None when `slot` is taken (another process
        runs this scheduled job)."""

        def unit(s: Session) -> int:
            values = {"trigger": trigger, "slot": slot, "state": RunState.RUNNING, "details": {}, **fields}
            run = self.model(**values)  # the declarative constructor of the table's model
            s.add(run)
            s.flush()
            return int(run.id)

        with contextlib.suppress(IntegrityError):
            return self.db.write(unit)
        return None

    def finish(
        self,
        run_id: int,
        *,
        state: RunState,
        duration_ms: float,
        details: dict[str, Any] | None = None,
        error: str | None = None,
        **fields: Any,
    ) -> None:
        """Close a run: its final state, details, duration (ms, to 0.1) and error, and the table's own
        `fields` (a field given as None keeps its value)."""

        def unit(s: Session) -> None:
            run = s.get(self.model, run_id)
            if run is None:
                return
            run.state = state
            run.finished_at = utcnow()
            run.duration_ms = round(duration_ms, 1)
            run.details = details or {}
            run.error = error
            for name, value in fields.items():
                if value is not None:
                    setattr(run, name, value)

        self.db.write(unit)

    def update(self, run_id: int, **fields: Any) -> None:
        """Set fields of a run (e.g. name what a running backup makes, before it is finished)."""

        def unit(s: Session) -> None:
            run = s.get(self.model, run_id)
            if run is not None:
                for name, value in fields.items():
                    setattr(run, name, value)

        self.db.write(unit)

    def record(self, *, trigger: str, state: RunState, duration_ms: float, **fields: Any) -> int:
        """A record of something already done (e.g. a restore, logged in the database it produced)."""
        start_fields = {k: v for k, v in fields.items() if k not in ("details", "error")}
        run_id = self.start(trigger=trigger, **start_fields)
        assert run_id is not None  # no slot, so never refused
        self.finish(
            run_id, state=state, duration_ms=duration_ms, details=fields.get("details"), error=fields.get("error")
        )
        return run_id

    def mark_interrupted(self, *, keep: int | None = None) -> int:
        """Runs left `running` by a process that died; the caller makes sure none is alive (a lock)."""
        return self.db.write(lambda s: interrupt_running(s, self.model, keep=keep))

    def get(self, run_id: int, render: Callable[[R], T]) -> T | None:
        with self.db.read() as s:
            run = s.get(self.model, run_id)
            return render(run) if run is not None else None

    def history(
        self, render: Callable[[R], T], *, limit: int = 50, where: Iterable[ColumnElement[bool]] = ()
    ) -> list[T]:
        """The newest runs first (those matching `where`)."""
        with self.db.read() as s:
            stmt = select(self.model).where(*where).order_by(self.model.id.desc()).limit(limit)
            return [render(r) for r in s.scalars(stmt)]

    def latest(self, render: Callable[[R], T], *where: ColumnElement[bool]) -> T | None:
        found = self.history(render, limit=1, where=where)
        return found[0] if found else None

    def running(self, render: Callable[[R], T]) -> list[T]:
        return self.history(render, limit=1_000, where=[self.model.state == RunState.RUNNING])
