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

The file is read through `FrozenDatabase.open()`, never `open()`: closing any descriptor of a file drops every
POSIX lock the process holds on it (fcntl's rule), SQLite connections' locks included. With the shared lock
each WAL connection keeps on the database file gone, another process's closing connection took itself for
the last user, checkpointed and deleted the WAL under this process's connections ('disk I/O error' next).
SQLite keeps its own descriptors open for that reason; `open()` here reads with `pread` through one
descriptor per database file that this process never closes.

When the WAL cannot be fully checkpointed (an older reader still needs frames) or a writer keeps the lock
past `WRITE_LOCK_WAIT_S`, `freeze` returns None and the backup copies through the backup API as before: a
slower path, never a weaker one.
"""

from __future__ import annotations

import io
import os
import sqlite3
import threading
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

    def open(self) -> io.BufferedReader:
        """The snapshot's bytes (the file's first `size`), read without ever closing a descriptor of it."""
        return io.BufferedReader(_PreadFile(_kept_descriptor(self.path), self.size), buffer_size=1 << 20)

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


_kept: dict[tuple[int, int], tuple[Path, int]] = {}  # (device, inode) -> (path, descriptor), never closed
_kept_lock = threading.Lock()


def _kept_descriptor(path: Path) -> int:
    """This process's descriptor of `path`'s file, opened once and kept open.

    A descriptor kept for a file that has since been replaced at its path (a database restored in place)
    is closed: no connection uses that file any more, and the kept descriptor would hold its space."""
    with _kept_lock:
        current = path.stat()
        key = (current.st_dev, current.st_ino)
        if key in _kept:
            return _kept[key][1]
        for old_key, (old_path, old_fd) in list(_kept.items()):
            try:
                now = old_path.stat()
                replaced = (now.st_dev, now.st_ino) != old_key
            except FileNotFoundError:
                replaced = True
            if replaced:
                del _kept[old_key]
                os.close(old_fd)
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        opened = os.fstat(fd)
        _kept[(opened.st_dev, opened.st_ino)] = (path, fd)
        return fd


class _PreadFile(io.RawIOBase):
    """The first `size` bytes of a kept descriptor, with this reader's own position (`pread`), so that
    two readers never move each other's offset and closing the reader leaves the descriptor open."""

    def __init__(self, fd: int, size: int) -> None:
        super().__init__()
        self._fd = fd
        self._size = size
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        want = min(len(buffer), max(0, self._size - self._pos))
        if want == 0:
            return 0
        data = os.pread(self._fd, want, self._pos)
        buffer[: len(data)] = data
        self._pos += len(data)
        return len(data)
