"""The write side of a backup: each file read, hashed, compressed, encrypted and written by a bounded pipeline.

Two stages, so that both cores stay busy and only one thread does Python work per unit (threads that all
did it took turns at the GIL, and each turn could wait up to its 5 ms switch interval):

* **read and plan** (the calling thread): read a window of about 1 MiB, hash its units (SHA-256 per
  4 KiB page, one hashlib call each, without the GIL), decide which units are new and name the block
  that will hold them. It does nothing else.
* **encode and put** (a pool of `threads`): compress, checksum or encrypt, and write the block. zstd,
  hashlib and AES-GCM work on whole blocks without the GIL, so these threads take it a few times per
  block.

The calling thread then records each window's map rows, in order. Memory is bounded whatever the file's
size: at most `IN_FLIGHT` windows are between the read and the record, and each encoding thread holds one
frame, so under (IN_FLIGHT + 2 x threads) MiB per file being written, two files at once while a full
backup's database is copied (measured: an 11 MiB peak for a 96 MiB file, tests/test_backup_pipeline.py).
Only the file's map grows with it (about 30 bytes a unit), and for an incremental the previous backup's
map, as before. An error in any stage (a full disk, a file that changed size, a damaged previous map) is
raised in the calling thread; every other stage is then stopped and waited for (`close`) before the
backup is failed, and no manifest names anything written so far.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import threading
from collections import deque
from collections.abc import Container, Iterator
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import accumulate, pairwise
from pathlib import Path
from typing import Literal

import fastcdc
import numpy as np

from ragstore.backup.blocks import WINDOW, Chunking, file_checksum
from ragstore.backup.errors import BackupFailed
from ragstore.backup.frozen import FrozenDatabase
from ragstore.backup.manifest import FileEntry, Manifest
from ragstore.backup.repository import Repository
from ragstore.backup.snapshot import StagedFile
from ragstore.backup.unitmap import DIGEST_BYTES, UnitMap

__all__ = ["IN_FLIGHT", "BlockWriter", "SnapshotWriter", "WindowPlan", "WriteStats", "plan_window"]

IN_FLIGHT = 12  # windows between read and record: enough to keep `threads` encoders busy, and the memory bound

Place = tuple[str, int, int]  # block, offset in its plaintext, length


@dataclass
class WriteStats:
    new_blocks: list[str] = field(default_factory=list)
    stored_bytes: int = 0


@dataclass
class WindowPlan:
    """What the read-and-plan stage decided for one window; `plain` is what the block will hold."""

    digests: list[bytes]
    lengths: list[int]
    block: str | None  # None: every unit is stored already (nothing to write)
    plain: bytes | None
    offsets: dict[int, int] | None  # unit index -> offset in the block; None: every unit, in order


def _digests(view: memoryview, lengths: list[int]) -> list[bytes]:
    """Each unit's SHA-256, truncated: one hashlib call per unit, which hashes without the GIL.

    The previous design fed hashlib pieces under 2 KiB so that it kept the GIL, because every worker
    thread hashed and they fought over it; here one thread hashes and the encoders do not need the GIL
    while it does, so letting go of it for each page costs little and lets an encoder's few Python steps
    in between.
    """
    sha = hashlib.sha256
    unit = lengths[0]
    if all(n == unit for n in lengths[:-1]):
        return [sha(view[at : at + unit]).digest()[:DIGEST_BYTES] for at in range(0, len(view), unit)]
    starts = [0, *accumulate(lengths)]
    return [sha(view[a:b]).digest()[:DIGEST_BYTES] for a, b in pairwise(starts)]


def plan_window(repo: Repository, data: bytes, lengths: list[int], previous: Container[bytes] | None) -> WindowPlan:
    """Hash a window's units and choose the ones to store: not in the previous backup, first in the window."""
    view = memoryview(data)
    digests = _digests(view, lengths)
    first: dict[bytes, int] = {}
    for i, d in enumerate(digests):
        first.setdefault(d, i)
    if previous is None and len(first) == len(digests):  # a full backup's usual window: all new, all distinct
        name = repo.frames.digest(b"".join(digests)).hex()
        return WindowPlan(digests, lengths, name, data, None)
    offsets: dict[int, int] = {}
    parts: list[memoryview] = []
    fresh: list[bytes] = []
    at = offset = 0
    for i, (d, n) in enumerate(zip(digests, lengths, strict=True)):
        if first[d] == i and (previous is None or d not in previous):
            offsets[i] = offset
            offset += n
            parts.append(view[at : at + n])
            fresh.append(d)
        at += n
    if not parts:
        return WindowPlan(digests, lengths, None, None, offsets)
    # Named from its units' digests (already computed): hashing the plaintext again would cost as much.
    return WindowPlan(digests, lengths, repo.frames.digest(b"".join(fresh)).hex(), b"".join(parts), offsets)


def windows(
    f: io.BufferedReader, path: Path, size: int, chunking: Chunking, unit: int
) -> Iterator[tuple[bytes, list[int]]]:
    """(window bytes, unit lengths) for consecutive windows of about WINDOW bytes, up to `f`'s end."""
    if chunking == "fixed":
        per = max(1, WINDOW // unit)
        while True:
            data = f.read(per * unit)
            if not data:
                return
            full, rest = divmod(len(data), unit)
            yield data, [unit] * full + ([rest] if rest else [])
    if size == 0:
        return
    lengths: list[int] = []
    pending = 0
    for chunk in fastcdc.fastcdc(str(path), min_size=max(unit // 4, 64), avg_size=unit, max_size=unit * 4, fat=False):
        lengths.append(int(chunk.length))
        pending += int(chunk.length)
        if pending >= WINDOW:
            yield f.read(pending), lengths
            lengths, pending = [], 0
    if lengths:
        yield f.read(pending), lengths


class _MapRows:
    """A file's map in file order (the record stage), kept as one set of arrays per window: about 30 bytes a
    unit, against about 110 for rows of Python objects (measured with tracemalloc), for the 420,000 units
    of a 1.7 GB database."""

    def __init__(self, lookup: dict[bytes, Place] | None) -> None:
        self.lookup = lookup
        self.blocks: dict[str, int] = {}
        self.digests: list[bytes] = []  # each window's unit digests, concatenated
        self.rows: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # each window's block, offset, length
        self.units = 0
        self.new_units = 0

    def add(self, plan: WindowPlan) -> None:
        count = len(plan.lengths)
        self.digests.append(b"".join(plan.digests))
        self.units += count
        length = np.array(plan.lengths, dtype=np.uint32)
        if plan.offsets is None:  # every unit new and in order: no per-unit work
            assert plan.block is not None
            offset = np.zeros(count, dtype=np.uint32)
            np.cumsum(length[:-1], out=offset[1:])
            block = np.full(count, self.blocks.setdefault(plan.block, len(self.blocks)), dtype=np.int32)
            self.new_units += count
            self.rows.append((block, offset, length))
            return
        blocks: list[int] = []
        offsets: list[int] = []
        first_new: dict[bytes, tuple[str, int]] = {}
        for i, (d, n) in enumerate(zip(plan.digests, plan.lengths, strict=True)):
            stored = plan.offsets.get(i)
            place: Place
            if stored is not None:
                assert plan.block is not None
                place = (plan.block, stored, n)
                first_new[d] = (plan.block, stored)
                self.new_units += 1
            elif d in first_new:  # a repeat of a unit stored earlier in this window
                place = (*first_new[d], n)
            else:
                assert self.lookup is not None
                place = self.lookup[d]
                length[i] = place[2]
            blocks.append(self.blocks.setdefault(place[0], len(self.blocks)))
            offsets.append(place[1])
        self.rows.append((np.array(blocks, dtype=np.int32), np.array(offsets, dtype=np.uint32), length))

    def unit_map(self) -> UnitMap:
        def column(i: int, dtype: type[np.generic]) -> np.ndarray:
            return np.concatenate([r[i] for r in self.rows]) if self.rows else np.zeros(0, dtype=dtype)

        return UnitMap(
            blocks=list(self.blocks),
            digest=np.frombuffer(b"".join(self.digests), dtype=np.uint8).reshape(-1, DIGEST_BYTES),
            block=column(0, np.int32),
            offset=column(1, np.uint32),
            length=column(2, np.uint32),
        )


class BlockWriter:
    """Writes files into a repository; units found in `previous` (the last backup's map) are not written."""

    def __init__(self, repo: Repository, *, unit_size: int, threads: int = 3) -> None:
        self.repo = repo
        self.unit_size = unit_size
        self.stats = WriteStats()
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="ragstore-backup")
        self._stats_lock = threading.Lock()  # two files may be written at once (`SnapshotWriter`)
        self._stopped = threading.Event()

    def close(self) -> None:
        """Stop every file being written (it raises at its next window), cancel blocks not started and wait
        for those that have: nothing is written after this returns."""
        self._stopped.set()
        self._pool.shutdown(wait=True, cancel_futures=True)

    def write_file(
        self,
        path: Path,
        rel: str,
        role: Literal["database", "index"],
        chunking: Chunking,
        *,
        map_name: str,
        previous: UnitMap | None,
        held: FrozenDatabase | None = None,
    ) -> FileEntry:
        """Store a file (or, `held`, a live database's snapshot, read through it) and its map."""
        size = path.stat().st_size if held is None else held.size
        lookup = previous.lookup() if previous is not None else None
        rows = _MapRows(lookup)
        pending: deque[tuple[WindowPlan, Future[int] | None]] = deque()

        def record() -> None:
            plan, put = pending.popleft()
            if put is not None:
                written = put.result()
                assert plan.block is not None
                with self._stats_lock:
                    self.stats.stored_bytes += written
                    self.stats.new_blocks.append(plan.block)
            rows.add(plan)

        try:
            with open(path, "rb") if held is None else held.open() as f:
                for data, lengths in windows(f, path, size, chunking, self.unit_size):
                    if self._stopped.is_set():
                        raise CancelledError
                    plan = plan_window(self.repo, data, lengths, lookup)
                    put = None
                    if plan.block is not None:
                        put = self._pool.submit(self.repo.put_block, plan.block, plan.plain or b"")
                    pending.append((plan, put))
                    while len(pending) >= IN_FLIGHT:
                        record()
                while pending:
                    record()
                if f.tell() != size:
                    raise BackupFailed(f"{path} changed size while it was read (expected {size} bytes)")
        except (CancelledError, RuntimeError):  # the pool cancelled or shut down under this file
            if self._stopped.is_set():
                raise BackupFailed(f"writing {rel} was stopped: another part of the backup failed") from None
            raise
        written = self.repo.put_object(map_name, rows.unit_map().to_bytes())
        with self._stats_lock:
            self.stats.stored_bytes += written
        return FileEntry(
            path=rel,
            role=role,
            size=size,
            sha256=file_checksum(rows.digests),  # the same hash list: the windows' digests, concatenated
            blocks=list(rows.blocks),
            map=map_name,
            units=rows.units,
            new_units=rows.new_units,
        )


class SnapshotWriter:
    """Stores a snapshot's files, each against the same file of the previous backup (`parent`).

    The index files are staged before the database, and the database takes seconds to be ready (counted
    inside the read that holds it still, or copied by pg_dump or SQLite's backup API): `start` stores files
    in side threads as soon as they are ready (two at once: the index files and a live SQLite database, whose
    bytes are read in place while its counts are taken), so neither core waits. `store` then writes the rest
    and returns every file's entry in snapshot order.
    """

    def __init__(
        self, repo: Repository, *, backup_id: str, parent: Manifest | None, unit_size: int, threads: int
    ) -> None:
        self.repo = repo
        self.backup_id = backup_id
        self.parent = parent
        self.writer = BlockWriter(repo, unit_size=unit_size, threads=threads)
        self._before = {f.path: f for f in parent.files} if parent is not None else {}
        self._maps = itertools.count()
        self._early: dict[str, Future[FileEntry]] = {}
        self._side = ThreadPoolExecutor(max_workers=2, thread_name_prefix="ragstore-backup-early")

    @property
    def stats(self) -> WriteStats:
        return self.writer.stats

    def start(self, staged: list[StagedFile]) -> None:
        """Begin storing these files in the background (their errors surface in `store`)."""
        for one in staged:
            self._early[one.rel] = self._side.submit(self._write, one, next(self._maps))

    def store(self, staged: list[StagedFile]) -> list[FileEntry]:
        """Every file's entry, in the order given: those `start`ed are awaited, the others written now."""
        entries: dict[str, FileEntry] = {}
        for one in staged:
            if one.rel not in self._early:
                entries[one.rel] = self._write(one, next(self._maps))
        for rel, early in self._early.items():
            entries[rel] = early.result()
        return [entries[one.rel] for one in staged]

    def close(self) -> None:
        """Stop whatever is still being written and wait for it (after a failure, nothing goes on writing)."""
        self.writer.close()
        self._side.shutdown(wait=True, cancel_futures=True)

    def _write(self, staged: StagedFile, n: int) -> FileEntry:
        before = self._before.get(staged.rel)
        previous = None
        if before is not None and self.parent is not None:
            previous = self.repo.load_map(before.map, where=f"backup {self.parent.id}")
        return self.writer.write_file(
            staged.path,
            staged.rel,
            staged.role,
            staged.chunking,
            map_name=f"maps/{self.backup_id}/{n}",
            previous=previous,
            held=staged.held,
        )
