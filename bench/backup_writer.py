"""Where a full backup's CPU goes: the block writer alone on one file, with parts of its work switched off.

    python bench/backup_writer.py FILE [--rounds 3] [--threads 3]

`bench/backup.py` times whole backups beside `cp`; this times `backup/pipeline.BlockWriter.write_file` on one
file (a store's `ragstore.db`, say) as a full backup stores it, so that each cost can be told apart:

* `zstd L` / `none`: the whole pipeline (read, SHA-256 of each 4 KiB unit, compress, checksum, write the
  blocks, one `sync`) at that compression;
* `... no writes`: the same with a storage that drops each block instead of writing it (the difference is
  what writing the blocks costs, mostly in the kernel);
* `read + unit hashes`: the read-and-plan stage's hashing alone, one thread.

Each row gives wall seconds, the process's CPU seconds (user + system) and MB/s of the file. The rows are
interleaved and each round writes into a new repository folder (deleting one first would bring the
file system's discards into the next round's time on a `discard` mount); all are removed at the end. The
ratios between rows in one run are what to read: this machine's absolute times move between runs.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from ragstore.backup.pipeline import BlockWriter, _digests, windows
from ragstore.backup.repository import Repository
from ragstore.backup.storage import LocalStorage

UNIT = 4096


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _store(path: Path, folder: Path, codec: str, level: int, threads: int, write: bool) -> tuple[float, float, int]:
    storage = LocalStorage(folder)
    if not write:
        storage.put = lambda name, data: None  # type: ignore[method-assign]
    repo = Repository(storage, codec=codec, level=level, key=None)  # type: ignore[arg-type]
    writer = BlockWriter(repo, unit_size=UNIT, threads=threads)
    cpu, started = _cpu(), time.perf_counter()
    try:
        writer.write_file(path, "db", "database", "fixed", map_name="maps/bench/0", previous=None)
        storage.sync()
    finally:
        writer.close()
    return time.perf_counter() - started, _cpu() - cpu, writer.stats.stored_bytes


def _hash_only(path: Path) -> tuple[float, float, int]:
    cpu, started = _cpu(), time.perf_counter()
    with open(path, "rb") as f:
        for data, lengths in windows(f, path, path.stat().st_size, "fixed", UNIT):
            _digests(memoryview(data), lengths)
    return time.perf_counter() - started, _cpu() - cpu, 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("file", type=Path)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=3)
    args = parser.parse_args()
    size = args.file.stat().st_size
    rows: dict[str, list[tuple[float, float, int]]] = {}
    cases: list[tuple[str, str, int, bool]] = [
        ("zstd 1 (default)", "zstd", 1, True),
        ("zstd 1, no writes", "zstd", 1, False),
        ("none", "none", 0, True),
        ("none, no writes", "none", 0, False),
    ]
    scratch = Path(tempfile.mkdtemp(prefix="ragstore-bench-writer-", dir=args.file.parent))
    try:
        for n in range(args.rounds):
            for i, (label, codec, level, write) in enumerate(cases):
                run = _store(args.file, scratch / f"{n}-{i}", codec, level, args.threads, write)
                rows.setdefault(label, []).append(run)
            rows.setdefault("read + unit hashes (one thread)", []).append(_hash_only(args.file))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    table = Table(title=f"BlockWriter on {args.file.name} ({size / 1e6:,.0f} MB), {args.threads} threads, medians")
    for column in ("work", "wall s", "CPU s", "MB/s", "stored MB"):
        table.add_column(column, justify="left" if column == "work" else "right")
    for label, runs in rows.items():
        wall = statistics.median(r[0] for r in runs)
        table.add_row(
            label,
            f"{wall:.3f}",
            f"{statistics.median(r[1] for r in runs):.2f}",
            f"{size / wall / 1e6:,.0f}",
            f"{runs[0][2] / 1e6:,.0f}" if runs[0][2] else "",
        )
    Console(width=120).print(table)


if __name__ == "__main__":
    main()
