"""A live SQLite database held still by a read (`backup/frozen.py`): its file's bytes are that read's snapshot
while writers go on committing, and a database that cannot be held still falls back to the backup API copy."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
import sys
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


def locked_ranges(path: Path) -> set[str]:
    """The POSIX lock ranges this process holds on `path`'s file, from /proc/locks (Linux)."""
    st = path.stat()
    device = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    found = set()
    for line in Path("/proc/locks").read_text().splitlines():
        fields = line.split()
        if "POSIX" in fields and str(os.getpid()) in fields and device in fields:
            found.add(" ".join(fields[-2:]))
    return found


@pytest.mark.skipif(not Path("/proc/locks").exists(), reason="reads this process's locks from Linux's /proc/locks")
def test_reading_the_held_file_keeps_this_processs_locks_so_no_other_process_deletes_the_wal(tmp_path: Path) -> None:
    """Closing any descriptor of a file drops every POSIX lock the process holds on it, SQLite's included.
    The backup read the held database through `open()`: afterwards a connection of another process, closing,
    found no lock on the file, took itself for its last user, checkpointed and deleted the WAL under this
    process's open connections, whose next read was 'disk I/O error' (the hostile restore tests' server)."""
    live = tmp_path / "live.db"
    live_database(live, rows=300)
    server = sqlite3.connect(live, isolation_level=None)  # a server's pooled connection, open throughout
    server.execute("INSERT INTO t (body) VALUES (x'01')")
    locks = locked_ranges(live)
    assert locks  # WAL mode: a connection holds a shared lock on the database file while it is open
    held = freeze(live)
    assert held is not None
    try:
        for _ in range(2):  # a second backup in the same process reads through the same descriptor
            with held.open() as f:
                data = f.read(held.size + 4096)
            assert len(data) == held.size  # never past the snapshot's pages
        with held.open() as f:
            f.seek(held.size - 10)
            assert f.read(100) == data[-10:] and f.tell() == held.size
    finally:
        held.release()
    assert locked_ranges(live) == locks
    server.execute("INSERT INTO t (body) VALUES (x'02')")
    subprocess.run(
        [sys.executable, "-c", f"import sqlite3; c = sqlite3.connect({str(live)!r}); c.execute('SELECT 1'); c.close()"],
        check=True,
        timeout=60,
    )
    assert live.with_name("live.db-wal").exists()  # the other process saw this one's lock: not the last user
    server.execute("INSERT INTO t (body) VALUES (x'03')")
    assert server.execute("SELECT count(*) FROM t").fetchone()[0] == 303
    server.close()
    with sqlite3.connect(live) as fresh:
        assert fresh.execute("SELECT count(*) FROM t").fetchone()[0] == 303
