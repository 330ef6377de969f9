"""Slow statements (issue #20): recorded by fingerprint with their values removed, added up across flushes
and processes, read by `ragstore db slow`; on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from ragstore.cli import app
from ragstore.clock import ManualClock
from ragstore.config import Settings
from ragstore.db.slow import fingerprint, read_slow
from ragstore.service import RagStore


def test_a_fingerprint_keeps_the_statement_and_drops_its_values() -> None:
    _, plain = fingerprint("SELECT *  FROM t\n WHERE a = 'o''brien' AND b = 42 AND c IN (?, ?, ?) AND d = -1.5e3")
    assert plain == "SELECT * FROM t WHERE a = ? AND b = ? AND c IN (?) AND d = ?"
    key, pg = fingerprint("SELECT x::jsonb, t1.id FROM t1 WHERE id = %(id_1)s AND y IN (%(y_1)s, %(y_2)s)")
    assert pg == "SELECT x::jsonb, t1.id FROM t1 WHERE id = ? AND y IN (?)"
    assert key == fingerprint("SELECT x::jsonb, t1.id FROM t1 WHERE id = %(id_9)s AND y IN (%(y_1)s)")[0]


def slow_statement(store: RagStore, secret: str) -> None:
    """One statement that takes tens of milliseconds on either dialect, holding a value a user might send."""
    if store.db.is_sqlite:
        sql = (
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 300000) "
            f"SELECT count(*), '{secret}' FROM n"
        )
    else:
        sql = f"SELECT pg_sleep(0.03), '{secret}'"
    with store.db.read() as s:
        s.execute(text(sql)).all()


def test_slow_statements_are_counted_without_their_values(
    make_settings: Callable[..., Settings],
    embedder: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = ManualClock()
    settings = make_settings(slow_query_ms=10, companion_model="none")
    with RagStore.open(settings, embedder=embedder, clock=clock) as store:
        slow_statement(store, "alice@example.org")
        slow_statement(store, "bob@example.org")
        assert store.db.flush_slow(clock.now()) >= 1
        with store.db.read() as s:
            found = [f for f in read_slow(s, 100) if "pg_sleep" in f.statement or "RECURSIVE" in f.statement]
        assert len(found) == 1 and found[0].count == 2 and found[0].max_ms >= 10
        assert found[0].mean_ms == pytest.approx(found[0].total_ms / 2, rel=1e-3)
        assert "example.org" not in found[0].statement and "?" in found[0].statement
        slow_statement(store, "carol@example.org")  # flushed when the store closes
    with RagStore.open(settings, embedder=embedder, clock=clock) as again, again.db.read() as s:
        assert next(f for f in read_slow(s, 100) if f.fingerprint == found[0].fingerprint).count == 3
    monkeypatch.setenv("RAGSTORE_DATA_DIR", str(settings.data_dir))
    if settings.database_url is not None:
        monkeypatch.setenv("DATABASE_URL", settings.database_url)
    shown = CliRunner().invoke(app, ["db", "slow", "--json"])
    assert shown.exit_code == 0, shown.output
    listed = {f["fingerprint"]: f for f in json.loads(shown.output)}
    assert listed[found[0].fingerprint]["count"] == 3
    table = CliRunner().invoke(app, ["db", "slow"])
    assert table.exit_code == 0 and "slow statements" in table.output


def test_nothing_is_kept_below_the_threshold_or_when_off(make_settings: Callable[..., Settings], embedder: Any) -> None:
    clock = ManualClock()
    with RagStore.open(make_settings(slow_query_ms=0, companion_model="none"), embedder=embedder, clock=clock) as store:
        slow_statement(store, "dave@example.org")
        assert store.db.flush_slow(clock.now()) == 0
