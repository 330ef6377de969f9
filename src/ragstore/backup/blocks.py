"""Files into blocks and back, deduplicated page by page.

A database changes in place, a few scattered pages at a time: replacing 1 % of the documents of a SQLite
store rewrites about 4 % of its 4 KiB pages but touches a third of its 64 KiB ranges. So files are cut
into small *units* (the SQLite page, or content-defined chunks of a `pg_dump` stream, where one changed
row would shift every later byte), each named by its SHA-256, and compared with the same file in the
previous backup. The units that changed within each 1 MiB window of the file are stored together as one
*block*: compressed, encrypted, named by its content. A per-file *map* (unit digest, block, offset,
length) says where every unit of the file lives, in this backup's blocks or in older ones, so a restore
needs only the map and the blocks it names. Writing is `pipeline.py`; this module holds what both
directions share, and reading a file back.
"""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Literal

import numpy as np

from ragstore.backup.errors import BackupDamaged, NoSpace
from ragstore.backup.manifest import FileEntry
from ragstore.backup.repository import Repository
from ragstore.backup.unitmap import DIGEST_BYTES, UnitMap

__all__ = ["WINDOW", "Chunking", "UnitMap", "assemble_file", "file_checksum", "unit_digest"]

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
