"""A live SQLite database read in place at one point in time, instead of being copied to staging first.

Copying through the online backup API took one core for seconds (0.6x of `cp` + `sync` on its own) and
wrote the whole database a second time, only for the backup to read it back: nothing could be hashed,
compressed or written until the copy ended. A WAL database can give the same point in time without a copy:

* A reader that begins while every WAL frame has been copied back into the database file (the WAL is
  fully checkpointed) reads the database file alone: SQLite gives it read mark 0 (`walTryBeginRead`).
* While any reader holds read mark 0, no checkpoint may copy frames into the database file (it must hold
  that mark exclusively to do so), so the file's bytes stay exactly that reader's snapshot. Writers go on:
  they append to the WAL, which is checkpointed once the reader ends.

So: hold the write lock for an instant (`BEGIN IMMEDIATE` on a second connection, so nothing commits), run
a passive checkpoint until the WAL is fully copied back, begin the read, and let writers go again. The
database file's first `page_count` pages are then read like any other file while the read is held; the
manifest's counts are taken inside the same read, so they describe those bytes. In rollback-journal mode a
held read blocks every commit, so the file is frozen for the same reason the backup API's copy was.

When the WAL cannot be fully checkpointed (an older reader still needs frames) or a writer keeps the lock
past `WRITE_LOCK_WAIT_S`, `freeze` returns None and the backup copies through the backup API as before: a
slower path, never a weaker one.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["FrozenDatabase", "freeze"]

CHECKPOINT_TRIES = 5
CHECKPOINT_PAUSE_S = 0.05
WRITE_LOCK_WAIT_S = 5.0  # how long to wait for a writer's transaction to end before copying instead


@dataclass
class FrozenDatabase:
    """A read transaction that holds a database file still; `size` is the snapshot's bytes (pages x size)."""

    path: Path
    size: int
    connection: sqlite3.Connection  # in the read transaction: query it for what the snapshot holds

    def release(self) -> None:
        """End the read (writers' checkpoints may then write into the file again)."""
        try:
            self.connection.execute("COMMIT")
        finally:
            self.connection.close()


def freeze(live: Path, *, timeout_s: float = 60.0) -> FrozenDatabase | None:
    """Begin a read that holds `live`'s file at one point in time, or None when this cannot be had now."""
    reader = sqlite3.connect(str(live), timeout=timeout_s, isolation_level=None, check_same_thread=False)
    try:
        mode = str(reader.execute("PRAGMA journal_mode").fetchone()[0]).lower()
        if mode == "wal":
            began = _begin_after_full_checkpoint(live, reader, timeout_s)
        elif mode in ("delete", "truncate", "persist"):
            _begin_read(reader)
            began = True
        else:  # memory or off: no lock keeps the file still
            began = False
        if not began:
            reader.close()
            return None
        pages = int(reader.execute("PRAGMA page_count").fetchone()[0])
        page_size = int(reader.execute("PRAGMA page_size").fetchone()[0])
    except BaseException:
        reader.close()
        raise
    frozen = FrozenDatabase(live, pages * page_size, reader)
    if live.stat().st_size < frozen.size:  # cannot happen while the read is held; refuse rather than guess
        frozen.release()
        return None
    return frozen


def _begin_read(reader: sqlite3.Connection) -> None:
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM sqlite_schema").fetchone()  # the read (and its snapshot) starts here


def _begin_after_full_checkpoint(live: Path, reader: sqlite3.Connection, timeout_s: float) -> bool:
    """Begin the read with the WAL fully checkpointed and no commit in between; False if it never was.

    A long write transaction elsewhere is waited for briefly only: the backup then copies instead, which
    needs no write lock (the backup API's read waits for no writer)."""
    writer = sqlite3.connect(str(live), timeout=min(timeout_s, WRITE_LOCK_WAIT_S), isolation_level=None)
    try:
        for attempt in range(CHECKPOINT_TRIES):
            if attempt:
                time.sleep(CHECKPOINT_PAUSE_S)  # writers may commit meanwhile; an old reader may finish
            try:
                writer.execute("BEGIN IMMEDIATE")  # the write lock: nothing commits until the read has begun
            except sqlite3.OperationalError:  # busy past the wait: a writer holds the lock
                continue
            try:
                busy, frames, copied = reader.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                if busy == 0 and frames == copied:
                    _begin_read(reader)
                    return True
            finally:
                writer.execute("ROLLBACK")
        return False
    finally:
        writer.close()
