"""Files into blocks and back: splitting, parallel hashing/compressing/encrypting, and reassembly.

Database and index files change in place, page by page, so they are cut at fixed offsets (a multiple of
the 4 KiB SQLite page): an unchanged page range gives the same block as last time. A `pg_dump` file is
a stream in which one changed row shifts every byte after it, so it is cut by content (FastCDC), which
finds the same boundaries again after the change. hashlib, zstd and AES-GCM release the GIL, so a few
threads keep both cores busy.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import fastcdc

from ragstore.backup.errors import BackupDamaged, BackupError, NoSpace
from ragstore.backup.manifest import FileEntry
from ragstore.backup.repository import Repository

__all__ = ["BlockWriter", "Chunking", "WriteStats", "assemble_file"]

Chunking = Literal["fixed", "content"]
IN_FLIGHT = 16


def _spans(path: Path, size: int, chunking: Chunking, block_size: int) -> Iterator[tuple[int, int]]:
    if size == 0:
        return
    if chunking == "fixed":
        for offset in range(0, size, block_size):
            yield offset, min(block_size, size - offset)
        return
    avg = block_size
    for chunk in fastcdc.fastcdc(str(path), min_size=max(avg // 4, 64), avg_size=avg, max_size=avg * 4, fat=False):
        yield int(chunk.offset), int(chunk.length)


@dataclass
class WriteStats:
    new_blocks: list[str] = field(default_factory=list)
    stored_bytes: int = 0
    logical_bytes: int = 0
    reused_blocks: int = 0


class BlockWriter:
    """Writes files into a repository; with `reuse`, a block the repository already holds is not written."""

    def __init__(self, repo: Repository, *, block_size: int, reuse: bool, threads: int = 3) -> None:
        self.repo = repo
        self.block_size = block_size
        self.reuse = reuse
        self.stats = WriteStats()
        self._seen: set[str] = set()
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="ragstore-backup")

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _store(self, view: bytes) -> str:
        digest = self.repo.frames.digest(view).hex()
        with self._lock:
            first = digest not in self._seen
            self._seen.add(digest)
        if not first or (self.reuse and self.repo.has_block(digest)):
            with self._lock:
                self.stats.reused_blocks += 1
            return digest
        written = self.repo.put_block(digest, view)
        with self._lock:
            self.stats.new_blocks.append(digest)
            self.stats.stored_bytes += written
        return digest

    def write_file(self, path: Path, rel: str, role: Literal["database", "index"], chunking: Chunking) -> FileEntry:
        size = path.stat().st_size
        whole = hashlib.sha256()
        blocks: list[str] = []
        pending: deque[Future[str]] = deque()
        with open(path, "rb") as f:
            for offset, length in _spans(path, size, chunking, self.block_size):
                f.seek(offset)
                data = f.read(length)
                if len(data) != length:
                    raise BackupError(f"{path} changed size while it was read (expected {size} bytes)")
                whole.update(data)
                pending.append(self._pool.submit(self._store, data))
                while len(pending) >= IN_FLIGHT:
                    blocks.append(pending.popleft().result())
            while pending:
                blocks.append(pending.popleft().result())
        with self._lock:
            self.stats.logical_bytes += size
        return FileEntry(path=rel, role=role, size=size, sha256=whole.hexdigest(), blocks=blocks)


def assemble_file(repo: Repository, entry: FileEntry, target: Path, *, where: str, threads: int = 3) -> None:
    """Write one file of a backup from its blocks and check it against the manifest's size and SHA-256."""
    target.parent.mkdir(parents=True, exist_ok=True)
    whole = hashlib.sha256()
    label = f"{where}, file {entry.path}"
    try:
        with open(target, "wb") as out, ThreadPoolExecutor(max_workers=threads) as pool:
            pending: deque[Future[bytes]] = deque()

            def drain_one() -> None:
                data = pending.popleft().result()
                whole.update(data)
                out.write(data)

            for digest in entry.blocks:
                pending.append(pool.submit(repo.get_block, digest, where=label))
                while len(pending) >= IN_FLIGHT:
                    drain_one()
            while pending:
                drain_one()
            out.flush()
            os.fsync(out.fileno())
            written = out.tell()
    except OSError as exc:
        if exc.errno == 28:  # ENOSPC
            raise NoSpace(f"{label}: no space left writing {target}") from None
        raise
    if written != entry.size or whole.hexdigest() != entry.sha256:
        raise BackupDamaged(f"{label}: the reassembled file does not match its checksum in the manifest")
