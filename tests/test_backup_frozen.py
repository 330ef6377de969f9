"""A live SQLite database held still by a read (`backup/frozen.py`): its file's bytes are that read's snapshot
while writers go on committing, and a database that cannot be held still falls back to the backup API copy."""

from __future__ import annotations

import hashlib
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ragstore.backup import frozen as frozen_module
from ragstore.backup.frozen import freeze
from ragstore.config import Settings
from ragstore.service import RagStore

from backup_helpers import answers, backup_settings, copied_settings, load_corpus


def live_database(path: Path, rows: int = 2000) -> None:
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, body BLOB)")
        db.executemany("INSERT INTO t (body) VALUES (?)", [(bytes([i % 251]) * 700,) for i in range(rows)])


def file_hash(path: Path, size: int) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read(size)).hexdigest()


def test_the_file_stays_the_snapshot_while_writers_commit_and_checkpoint(tmp_path: Path) -> None:
    live = tmp_path / "live.db"
    live_database(live)
    held = freeze(live)
    assert held is not None
    try:
        seen = held.connection.execute("SELECT count(*), sum(length(body)) FROM t").fetchone()
        before = file_hash(live, held.size)
        writer = sqlite3.connect(live, isolation_level=None)
        writer.execute("PRAGMA synchronous=OFF")  # durability is not what is tested: quick commits
        for n in range(300):  # commits, and checkpoints that try to copy them into the file
            writer.execute("INSERT INTO t (body) VALUES (?)", (b"x" * 3000,))
            writer.execute("UPDATE t SET body = ? WHERE id = ?", (b"y" * 900, n + 1))
            if n % 50 == 0:
                writer.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        assert file_hash(live, held.size) == before
        copy = tmp_path / "copy.db"
        with open(live, "rb") as f:
            copy.write_bytes(f.read(held.size))
        with sqlite3.connect(copy) as restored:
            assert restored.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            assert restored.execute("SELECT count(*), sum(length(body)) FROM t").fetchone() == seen
    finally:
        held.release()
    # Once released, a checkpoint brings the file up to date.
    writer.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    assert writer.execute("SELECT count(*) FROM t").fetchone()[0] == seen[0] + 300
    writer.close()


def test_commits_racing_the_hold_never_land_in_the_file(tmp_path: Path) -> None:
    live = tmp_path / "live.db"
    live_database(live, rows=200)
    stop = threading.Event()

    def write() -> None:
        db = sqlite3.connect(live, isolation_level=None, timeout=30)
        db.execute("PRAGMA synchronous=OFF")
        db.execute("PRAGMA wal_autocheckpoint=20")  # checkpoints that race the hold, often
        while not stop.is_set():
            db.execute("INSERT INTO t (body) VALUES (?)", (b"z" * 2000,))
            time.sleep(0.0005)  # a busy store, not one writer that never lets go of the lock
        db.close()

    thread = threading.Thread(target=write)
    thread.start()
    holds = 0
    try:
        for _ in range(10):
            held = freeze(live)
            if held is None:  # the writer's own autocheckpoint may be mid-way: a fallback, never a bad copy
                continue
            holds += 1
            try:
                count = held.connection.execute("SELECT count(*) FROM t").fetchone()[0]
                with open(live, "rb") as f:
                    data = f.read(held.size)
            finally:
                held.release()
            copy = tmp_path / "copy.db"
            copy.write_bytes(data)
            with sqlite3.connect(copy) as restored:
                assert restored.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
                assert restored.execute("SELECT count(*) FROM t").fetchone()[0] == count
            copy.unlink()
    finally:
        stop.set()
        thread.join()
    assert holds >= 5


def test_an_old_reader_that_needs_the_wal_means_no_hold(tmp_path: Path) -> None:
    live = tmp_path / "live.db"
    live_database(live, rows=50)
    old = sqlite3.connect(live, isolation_level=None)
    old.execute("BEGIN")
    old.execute("SELECT count(*) FROM t").fetchone()  # its snapshot predates the next commit
    with sqlite3.connect(live) as db:
        db.execute("INSERT INTO t (body) VALUES (x'00')")
    assert freeze(live) is None  # the commit cannot be checkpointed while the old reader needs the WAL
    old.execute("COMMIT")
    held = freeze(live)
    assert held is not None
    held.release()
    old.close()


def test_a_backup_without_a_hold_copies_through_the_backup_api_and_restores(
    make_settings: Callable[..., Settings],
    embedder: Any,
    tmp_path: Path,
    database_url: str | None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if database_url is not None:
        pytest.skip("SQLite only")
    cfg = backup_settings(make_settings, tmp_path)
    monkeypatch.setattr(frozen_module, "CHECKPOINT_TRIES", 0)  # freeze never holds: the copy path
    with RagStore.open(cfg, embedder=embedder) as store:
        load_corpus(store)
        before = answers(store)
        made = store.backups.create("full")
        assert made is not None
        result = store.backups.restore_copy(made.id, str(tmp_path / "restored"))
    assert result.verify.counts == "match" and result.consistency.problems == 0
    with RagStore.open(copied_settings(cfg, result), embedder=embedder) as copy:
        assert answers(copy) == before


def test_a_writer_holding_the_lock_means_no_hold_not_a_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    live = tmp_path / "live.db"
    live_database(live, rows=50)
    monkeypatch.setattr(frozen_module, "WRITE_LOCK_WAIT_S", 0.05)
    busy = sqlite3.connect(live, isolation_level=None)
    busy.execute("BEGIN IMMEDIATE")  # a long write transaction
    try:
        assert freeze(live) is None  # the backup copies instead: the backup API needs only a read
    finally:
        busy.execute("ROLLBACK")
        busy.close()
    held = freeze(live)
    assert held is not None
    held.release()
