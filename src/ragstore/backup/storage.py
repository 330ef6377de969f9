"""Where a repository's objects live. Only the local filesystem today; the interface is an object store's.

Every method states its contract, so an S3 or GCS backend (a `s3://` URL in the registry) can be added
without touching the code that makes, verifies or restores backups.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import functools
import os
import shutil
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol, cast

from ragstore.backup.errors import BackupDamaged, NoSpace
from ragstore.errors import ConfigError, Conflict

__all__ = ["LocalStorage", "Storage", "open_storage", "start_writeback"]

SYNC_FILE_RANGE_WRITE = 2  # <fcntl.h>: start writing the range's dirty pages, do not wait


class Storage(Protocol):
    location: str

    def put(self, name: str, data: bytes) -> None:
        """Store an object atomically (a reader sees all of it or none); replaces one of the same name."""

    def get(self, name: str) -> bytes:
        """The whole object; FileNotFoundError when there is none."""

    def exists(self, name: str) -> bool: ...

    def size(self, name: str) -> int:
        """Bytes stored for an object; FileNotFoundError when there is none."""

    def list(self, prefix: str) -> list[str]:
        """Names of the objects under `prefix/` (one level), sorted; empty when the prefix has none."""

    def delete(self, name: str) -> None:
        """Remove an object; idempotent (a missing object is not an error)."""

    def sync(self) -> None:
        """Make every object put so far durable (after this, a crash loses none of them)."""

    def free_bytes(self) -> int | None:
        """Space left for new objects, None when unknown (an object store)."""

    def clear_temporary(self) -> int:
        """Remove what interrupted puts left behind (never a whole object); returns how many."""

    def lock(self) -> contextlib.AbstractContextManager[None]:
        """Exclusive for this repository across processes; raises Conflict at once when held elsewhere."""


class LocalStorage:
    """A directory. Objects are files; `put` writes a temporary file and renames it into place."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.location = str(root)

    def _path(self, name: str) -> Path:
        if name.startswith("/") or "\x00" in name or any(p in ("", ".", "..") for p in name.split("/")):
            # Names come from manifests, which an unencrypted repository lets anyone edit.
            raise BackupDamaged(f"{name[:80]!r} is not a repository object name (a manifest was altered)")
        return self.root / name

    def put(self, name: str, data: bytes) -> None:
        path = self._path(name)
        tmp = self.root / "tmp" / f"{uuid.uuid4().hex}.part"
        try:
            tmp.parent.mkdir(parents=True, exist_ok=True)
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                start_writeback(f.fileno())
            os.replace(tmp, path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink()
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise NoSpace(f"the backup repository {self.root} is full: no space left writing {name}") from None
            raise

    def get(self, name: str) -> bytes:
        return self._path(name).read_bytes()

    def exists(self, name: str) -> bool:
        return self._path(name).is_file()

    def size(self, name: str) -> int:
        return self._path(name).stat().st_size

    def list(self, prefix: str) -> list[str]:
        folder = self._path(prefix)
        if not folder.is_dir():
            return []
        return sorted(f"{prefix}/{p.name}" for p in folder.iterdir() if not p.name.endswith(".part"))

    def delete(self, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._path(name).unlink()

    def sync(self) -> None:
        # One syncfs-like flush for thousands of blocks is far cheaper than an fsync per file.
        os.sync()

    def free_bytes(self) -> int | None:
        self.root.mkdir(parents=True, exist_ok=True)
        return shutil.disk_usage(self.root).free

    def clear_temporary(self) -> int:
        """Remove what an interrupted `put` left behind; returns how many files."""
        folder = self.root / "tmp"
        if not folder.is_dir():
            return 0
        removed = 0
        for p in folder.iterdir():
            with contextlib.suppress(OSError):
                p.unlink()
                removed += 1
        return removed

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / "lock", "a+b") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise Conflict(
                    f"another backup, prune or restore is running on the repository {self.root}; try again later"
                ) from None
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)


@functools.cache
def _sync_file_range() -> Callable[[int, int, int, int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        call = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):
        return None
    call.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    call.restype = ctypes.c_int
    return cast(Callable[[int, int, int, int], int], call)


def start_writeback(fd: int) -> None:
    """Have the kernel start writing a file's dirty pages to disk now, without waiting for it.

    A backup writes hundreds of MB of blocks and then makes them durable with one `sync`. Left alone, the
    kernel writes them back only then (or after 30 s), so the disk idles while blocks are compressed and the
    CPUs idle while the sync waits for the disk. Started as each block is written, the writes overlap the
    work and the final sync has little left to do. Durability still comes from that sync (this flushes no
    metadata and no disk cache). Linux only (`sync_file_range(SYNC_FILE_RANGE_WRITE)`); elsewhere, nothing.
    """
    call = _sync_file_range()
    if call is not None:
        call(fd, 0, 0, SYNC_FILE_RANGE_WRITE)  # an error only means the pages wait for the sync


def open_storage(location: str) -> LocalStorage:
    """The storage for a repository location: a path or file:// URL (object stores are not built yet)."""
    if "://" in location and not location.startswith("file://"):
        scheme = location.split("://", 1)[0]
        raise ConfigError(
            f"RAGSTORE_BACKUP_REPOSITORY: {scheme}:// repositories are not supported yet; use a local path "
            "(a mounted network or object-store filesystem works)"
        )
    return LocalStorage(Path(location.removeprefix("file://")).expanduser())
