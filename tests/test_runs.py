"""The run ledger (db/runs.py): one behaviour for every table of runs, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from ragstore.config import Settings
from ragstore.db.engine import Database
from ragstore.db.models import BackupRun, ConsistencyReport, RunRecord
from ragstore.db.runs import INTERRUPTED_ERROR, RunLedger, RunState, complete_running, interrupt_running
from ragstore.migrations import Migrator

# What each table needs besides the ledger's own columns.
OWN_FIELDS: dict[type[RunRecord], dict[str, Any]] = {
    BackupRun: {"action": "backup", "kind": "full"},
    ConsistencyReport: {"backend": "embedded", "collection": None, "repair": False, "counts": {}},
}


@pytest.fixture
def db(settings: Settings) -> Iterator[Database]:
    database = Database(settings)
    Migrator(database.engine).upgrade()
    yield database
    database.dispose()


@pytest.fixture(params=[BackupRun, ConsistencyReport], ids=["backup_runs", "consistency_reports"])
def ledger(request: pytest.FixtureRequest, db: Database) -> RunLedger[Any]:
    return RunLedger(db, request.param)


def _start(ledger: RunLedger[Any], **kw: Any) -> int | None:
    return ledger.start(trigger="schedule", **OWN_FIELDS[ledger.model], **kw)


def _state(r: RunRecord) -> tuple[int, str, str | None]:
    return r.id, r.state, r.error


def test_a_slot_is_taken_once(ledger: RunLedger[Any]) -> None:
    first = _start(ledger, slot="2026-12-04T07:00")
    assert first is not None
    assert _start(ledger, slot="2026-12-04T07:00") is None
    assert _start(ledger, slot="2026-12-04T07:01") is not None
    assert _start(ledger) is not None and _start(ledger) is not None  # no slot: never refused
    assert [r[1] for r in ledger.running(_state)] == [RunState.RUNNING] * 4


def test_finish_records_state_details_duration_and_error(ledger: RunLedger[Any]) -> None:
    run_id = _start(ledger)
    assert run_id is not None
    ledger.finish(run_id, state=RunState.FAILED, duration_ms=12.345, details={"x": 1}, error="boom")
    row = ledger.get(run_id, lambda r: (r.state, r.duration_ms, r.details, r.error, r.finished_at is not None))
    assert row == ("failed", 12.3, {"x": 1}, "boom", True)
    assert ledger.get(run_id + 100, _state) is None
    assert ledger.running(_state) == []


def test_interrupted_runs_are_marked_but_the_kept_one(ledger: RunLedger[Any]) -> None:
    dead, alive = _start(ledger), _start(ledger)
    done = _start(ledger)
    assert dead is not None and alive is not None and done is not None
    ledger.finish(done, state=RunState.COMPLETE, duration_ms=1)
    assert ledger.mark_interrupted(keep=alive) == 1
    assert ledger.history(_state) == [
        (done, RunState.COMPLETE, None),
        (alive, RunState.RUNNING, None),
        (dead, RunState.INTERRUPTED, INTERRUPTED_ERROR),
    ]
    assert ledger.history(_state, limit=1) == [(done, RunState.COMPLETE, None)]
    assert ledger.latest(_state, ledger.model.state == RunState.INTERRUPTED) == (
        dead,
        RunState.INTERRUPTED,
        INTERRUPTED_ERROR,
    )


def test_record_of_something_already_done(ledger: RunLedger[Any]) -> None:
    run_id = ledger.record(
        trigger="cli", state=RunState.COMPLETE, duration_ms=5, details={"a": 2}, **OWN_FIELDS[ledger.model]
    )
    assert ledger.get(run_id, lambda r: (r.state, r.details, r.trigger)) == ("complete", {"a": 2}, "cli")


def test_connection_level_functions(ledger: RunLedger[Any], db: Database) -> None:
    """What a restore uses on a copy that is not an open store yet: complete one run, interrupt the rest."""
    model = ledger.model
    first, second = _start(ledger), _start(ledger)
    with db.engine.begin() as conn:
        assert complete_running(conn, model, model.id == first) == 1
        assert interrupt_running(conn, model, error="running when the backup was taken") == 1
        assert complete_running(conn, model, model.id == first) == 0  # no longer running
    with db.engine.connect() as conn:
        rows = dict(conn.execute(select(model.id, model.state)).all())
    assert rows == {first: RunState.COMPLETE, second: RunState.INTERRUPTED}
