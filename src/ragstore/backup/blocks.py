"""Files into blocks and back, deduplicated page by page.

A database changes in place, a few scattered pages at a time: replacing 1 % of the documents of a SQLite
store rewrites about 4 % of its 4 KiB pages but touches a third of its 64 KiB ranges. So files are cut
into small *units* (the SQLite page, or content-defined chunks of a `pg_dump` stream, where one changed
row would shift every later byte), each named by its SHA-256, and compared with the same file in the
previous backup. The units that changed within each 1 MiB window of the file are stored together as one
*block*: compressed, encrypted, named by its content. A per-file *map* (unit digest, block, offset,
length) says where every unit of the file lives, in this backup's blocks or in older ones, so a restore
needs only the map and the blocks it names. hashlib, zstd and AES-GCM release the GIL, so a few threads
keep both cores busy.
"""

from __future__ import annotations

import hashlib
import io
import os
import threading
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import fastcdc
import numpy as np

from ragstore.backup.errors import BackupDamaged, BackupFailed, NoSpace
from ragstore.backup.manifest import FileEntry
from ragstore.backup.repository import Repository
from ragstore.backup.unitmap import DIGEST_BYTES, UnitMap

__all__ = ["BlockWriter", "Chunking", "UnitMap", "WriteStats", "assemble_file"]

Chunking = Literal["fixed", "content"]
WINDOW = 1024 * 1024  # the most file bytes whose changed units become one block
IN_FLIGHT = 8


GIL_FREE_PIECE = 2047  # hashlib lets go of the GIL for inputs of 2,048 bytes or more


def unit_digest(view: memoryview) -> bytes:
    """SHA-256 of one unit (truncated to 16 bytes), fed in pieces too small for hashlib to release the GIL.

    Releasing and taking back the GIL for every 4 KiB page made two hashing threads spend more time
    handing it over than hashing (measured: 550 against 1,270 MB/s per thread); in pieces the digest is the
    same and the other threads' zstd and AES calls, which run without the GIL, go on in parallel.
    """
    h = hashlib.sha256()
    for at in range(0, len(view), GIL_FREE_PIECE):
        h.update(view[at : at + GIL_FREE_PIECE])
    return h.digest()[:DIGEST_BYTES]


def _windows(
    f: io.BufferedReader, path: Path, size: int, chunking: Chunking, unit: int
) -> Iterator[tuple[bytes, list[int]]]:
    """(window bytes, unit lengths) for consecutive windows of about WINDOW bytes."""
    if chunking == "fixed":
        per = max(1, WINDOW // unit)
        while True:
            data = f.read(per * unit)
            if not data:
                return
            yield data, [min(unit, len(data) - o) for o in range(0, len(data), unit)]
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


@dataclass
class WriteStats:
    new_blocks: list[str] = field(default_factory=list)
    stored_bytes: int = 0


@dataclass
class _WindowResult:
    digests: list[bytes]
    new: list[bool]
    block: str | None
    offsets: dict[int, int]  # unit index in the window -> offset in the new block


class BlockWriter:
    """Writes files into a repository; units found in `previous` (the last backup's map) are not written."""

    def __init__(self, repo: Repository, *, unit_size: int, threads: int = 3) -> None:
        self.repo = repo
        self.unit_size = unit_size
        self.stats = WriteStats()
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="ragstore-backup")

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _window(
        self, data: bytes, lengths: list[int], previous: dict[bytes, tuple[str, int, int]] | None
    ) -> _WindowResult:
        view = memoryview(data)
        digests, new, parts, offsets = [], [], [], {}
        seen: dict[bytes, int] = {}
        at, offset = 0, 0
        for i, n in enumerate(lengths):
            d = unit_digest(view[at : at + n])
            digests.append(d)
            fresh = (previous is None or d not in previous) and d not in seen
            new.append(fresh)
            if fresh:
                seen[d] = i
                parts.append(view[at : at + n])
                offsets[i] = offset
                offset += n
            at += n
        block = None
        if parts:
            plain = b"".join(parts)
            # Named from its units' digests (already computed): hashing the plaintext again would cost as much.
            block = self.repo.frames.digest(b"".join(d for d, f in zip(digests, new, strict=True) if f)).hex()
            written = self.repo.put_block(block, plain)
            with self._lock:
                self.stats.new_blocks.append(block)
                self.stats.stored_bytes += written
        return _WindowResult(digests, new, block, offsets)

    def write_file(
        self,
        path: Path,
        rel: str,
        role: Literal["database", "index"],
        chunking: Chunking,
        *,
        map_name: str,
        previous: UnitMap | None,
    ) -> FileEntry:
        size = path.stat().st_size
        lookup = previous.lookup() if previous is not None else None
        blocks: dict[str, int] = {}
        digest_rows: list[bytes] = []
        block_ix: list[int] = []
        offsets: list[int] = []
        lengths_all: list[int] = []
        pending: deque[tuple[Future[_WindowResult], list[int]]] = deque()
        new_units = 0

        def collect() -> None:
            nonlocal new_units
            future, lengths = pending.popleft()
            result = future.result()
            if result.block is not None and len(result.offsets) == len(lengths):
                # Every unit of the window is new (a full backup): its map rows need no per-unit work.
                digest_rows.extend(result.digests)
                block_ix.extend([blocks.setdefault(result.block, len(blocks))] * len(lengths))
                offsets.extend(np.cumsum([0, *lengths[:-1]]).tolist())
                lengths_all.extend(lengths)
                new_units += len(lengths)
                return
            first_new: dict[bytes, tuple[str, int]] = {}
            for i, (d, n) in enumerate(zip(result.digests, lengths, strict=True)):
                if result.new[i]:
                    assert result.block is not None
                    place = (result.block, result.offsets[i], n)
                    first_new[d] = (result.block, result.offsets[i])
                    new_units += 1
                elif lookup is not None and d in lookup:
                    place = lookup[d]
                else:  # a repeat of a unit stored earlier in this window
                    place = (*first_new[d], n)
                digest_rows.append(d)
                block_ix.append(blocks.setdefault(place[0], len(blocks)))
                offsets.append(place[1])
                lengths_all.append(place[2])

        with open(path, "rb") as f:
            for data, lengths in _windows(f, path, size, chunking, self.unit_size):
                pending.append((self._pool.submit(self._window, data, lengths, lookup), lengths))
                while len(pending) >= IN_FLIGHT:
                    collect()
            while pending:
                collect()
            if f.tell() != size:
                raise BackupFailed(f"{path} changed size while it was read (expected {size} bytes)")
        unit_map = UnitMap(
            blocks=list(blocks),
            digest=np.frombuffer(b"".join(digest_rows), dtype=np.uint8).reshape(-1, DIGEST_BYTES),
            block=np.array(block_ix, dtype=np.int32),
            offset=np.array(offsets, dtype=np.uint32),
            length=np.array(lengths_all, dtype=np.uint32),
        )
        self.stats.stored_bytes += self.repo.put_object(map_name, unit_map.to_bytes())
        return FileEntry(
            path=rel,
            role=role,
            size=size,
            sha256=file_checksum(digest_rows),
            blocks=list(blocks),
            map=map_name,
            units=len(digest_rows),
            new_units=new_units,
        )


def file_checksum(unit_digests: list[bytes]) -> str:
    """The file's checksum: SHA-256 over its units' SHA-256 digests, in order (a hash list), so the file's
    bytes are hashed once, in parallel, and any changed, missing or reordered byte changes it."""
    return hashlib.sha256(b"".join(unit_digests)).hexdigest()


# A map row: 16-byte digest, int32 block, uint32 offset and length; each block name 64 bytes; plus the npz's
# headers. What a map of `units` rows naming `blocks` blocks can take, decompressed.
MAP_ROW_BYTES = DIGEST_BYTES + 12
MAP_OVERHEAD = 64 * 1024


def assemble_file(
    repo: Repository, entry: FileEntry, target: Path, *, where: str, block_limit: int, threads: int = 3
) -> None:
    """Write one file of a backup from its map and blocks; check it against the manifest's size and SHA-256.

    `block_limit` is the most a block of this backup can hold (from the manifest's block size): no block is
    decompressed past it, and no map row may point past it. The file is created new (never through a
    symlink, never over an existing file), readable by its owner only.
    """
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    label = f"{where}, file {entry.path}"
    map_limit = entry.units * MAP_ROW_BYTES + len(entry.blocks) * 64 + MAP_OVERHEAD
    unit_map = repo.load_map(entry.map, where=label, max_size=map_limit)
    if len(unit_map.block) != entry.units or (
        len(unit_map.block) and int((unit_map.offset.astype(np.int64) + unit_map.length).max()) > block_limit
    ):
        raise BackupDamaged(f"{label}: its map does not match the manifest's units and block size (altered)")
    unit_digests: list[bytes] = []
    order = unit_map.block.tolist()
    if order and (min(order) < 0 or max(order) >= len(unit_map.blocks)):
        raise BackupDamaged(f"{label}: its map names a block it does not list (altered)")
    last_use = {b: i for i, b in enumerate(order)}
    first_use = list(dict.fromkeys(order))
    names = unit_map.blocks
    decoded: dict[int, Future[bytes]] = {}
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with open(fd, "wb") as out, ThreadPoolExecutor(max_workers=threads) as pool:
            ahead = iter(first_use)

            def prefetch(count: int) -> None:
                for _ in range(count):
                    b = next(ahead, None)
                    if b is None:
                        return
                    decoded[b] = pool.submit(repo.get_block, names[b], where=label, max_size=block_limit)

            prefetch(IN_FLIGHT)
            offsets, lengths = unit_map.offset.tolist(), unit_map.length.tolist()
            for i, b in enumerate(order):
                if b not in decoded:
                    decoded[b] = pool.submit(repo.get_block, names[b], where=label, max_size=block_limit)
                data = decoded[b].result()
                piece = data[offsets[i] : offsets[i] + lengths[i]]
                if len(piece) != lengths[i]:
                    raise BackupDamaged(f"{label}: block {repo.block_name(names[b])} is shorter than its map says")
                unit_digests.append(unit_digest(memoryview(piece)))
                out.write(piece)
                if last_use[b] == i:
                    del decoded[b]
                    prefetch(1)
            out.flush()
            os.fsync(out.fileno())
            written = out.tell()
    except OSError as exc:
        if exc.errno == 28:  # ENOSPC
            raise NoSpace(f"{label}: no space left writing {target}") from None
        raise
    if written != entry.size or file_checksum(unit_digests) != entry.sha256:
        raise BackupDamaged(f"{label}: the reassembled file does not match its checksum in the manifest")
