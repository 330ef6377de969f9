"""Backups of a store of >= 1 GB: throughput beside `cp`, incremental size, verify and restore times.

    python bench/backup.py                               # generates ~1.1 GB in /tmp/ragstore-bench-backup
    python bench/backup.py --data-dir /tmp/bb --keep     # keep the store: a rerun skips the load
    python bench/backup.py --block-kb 16                 # smaller blocks: smaller incrementals
    python bench/backup.py --encrypt                     # AES-256-GCM as well

The corpus is synthetic: documents of 8 chunks, each ~170 words drawn from a 6,000-word Korean and English
vocabulary (so text compresses about as real text does), with random L2-normalised vectors given, so no
model is loaded. What is timed, in one run on the same files:

* `cp` of the database and index files (and `cp` + `sync`, since a backup is durable), the raw limit;
* the SQLite online backup API alone (what any SQLite backup must read), and `tar | zstd -T0` (a peer that
  has no deduplication, encryption, manifest or verify);
* `ragstore backup create --kind full`, then 1 % of the documents replaced with new text and vectors, then
  `--kind incremental`: its stored size against the full's;
* `backup verify` (reassemble in a temporary folder, checksums, integrity_check, counts) and
  `backup restore --to` (the same, plus open, index recovery and the consistency check).

Targets: full backup >= 0.5x the throughput of `cp` (with sync); incremental <= 5 % of the full.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from ragstore import RagStore
from ragstore.backup.keys import generate_key
from ragstore.backup.manager import open_repository
from ragstore.config import Settings
from ragstore.schemas import BackupSummary, ChunkInput, DocumentInput, RestoreReport
from ragstore.service import restore_backup

console = Console(width=None if sys.stdout.isatty() else 160)
COLLECTION = "backup-bench"
MODEL = "bench-vectors"
PER_DOC = 8
WORDS_PER_CHUNK = 170


class NoEmbedder:
    """Every vector is given; a call to embed would be a bug in the benchmark."""

    backend = "none"
    model = MODEL

    def __init__(self, dimension: int) -> None:
        self.dimension = dimension

    def embed(self, texts: Any, *, kind: Any) -> Any:
        raise AssertionError("the benchmark gives every vector")


def vocabulary(rng: np.random.Generator, size: int = 6000) -> list[str]:
    syllables = [chr(0xAC00 + int(i)) for i in rng.integers(0, 11172, size=400)]
    letters = "abcdefghijklmnopqrstuvwxyz"
    words = []
    for i in range(size):
        if i % 3:
            words.append("".join(rng.choice(syllables, size=int(rng.integers(2, 5)))))
        else:
            words.append("".join(rng.choice(list(letters), size=int(rng.integers(3, 10)))))
    return words


def documents(
    rng: np.random.Generator, words: list[str], dim: int, numbers: range, generation: int
) -> Iterator[DocumentInput]:
    vocab = np.array(words)
    for number in numbers:
        vectors = rng.standard_normal((PER_DOC, dim)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        chunks = []
        for i in range(PER_DOC):
            # Zipf-like word choice: frequent words repeat, as in real text.
            picks = np.minimum(rng.zipf(1.3, size=WORDS_PER_CHUNK) - 1, len(vocab) - 1)
            text = f"문서 {number} 판 {generation} 조각 {i}: " + " ".join(vocab[picks])
            chunks.append(ChunkInput(text=text, vector=vectors[i]))
        yield DocumentInput(title=f"document {number}", source_uri=f"bench:{number}", chunks=chunks)


def load(store: RagStore, docs: int, dim: int, seed: int) -> float:
    rng = np.random.default_rng(seed)
    words = vocabulary(rng)
    started = time.perf_counter()
    batch: list[DocumentInput] = []
    for doc in documents(rng, words, dim, range(docs), 0):
        batch.append(doc)
        if len(batch) == 200:
            store.documents.add(COLLECTION, batch, wait=False)
            batch = []
    if batch:
        store.documents.add(COLLECTION, batch, wait=False)
    store.index.wait(timeout_s=24 * 3600)
    store.index.persist()
    return time.perf_counter() - started


def change_documents(store: RagStore, docs: int, fraction: float, dim: int, seed: int) -> int:
    """Replace `fraction` of the documents (spread over the whole store) with new text and vectors."""
    rng = np.random.default_rng(seed + 1)
    words = vocabulary(np.random.default_rng(seed))
    chosen = sorted(int(n) for n in rng.choice(docs, size=max(1, int(docs * fraction)), replace=False))
    batch: list[DocumentInput] = []
    generation = time.time_ns()  # new text on every run, also on a kept store
    for number in chosen:
        batch.extend(documents(rng, words, dim, range(number, number + 1), generation))
        if len(batch) == 200:
            store.documents.add(COLLECTION, batch)
            batch = []
    if batch:
        store.documents.add(COLLECTION, batch)
    store.index.wait()
    store.index.persist()
    return len(chosen)


def store_files(settings: Settings) -> list[Path]:
    """The database, then every file of the index directory (its layout is the backend's; the lock aside)."""
    db = settings.data_dir / "ragstore.db"
    return [db, *sorted(p for p in settings.index_dir.iterdir() if p.is_file() and not p.name.startswith("."))]


def timed(fn: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/ragstore-bench-backup"))
    parser.add_argument("--docs", type=int, default=30_000, help="documents of 8 chunks (30,000 is about 1.1 GB)")
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--change", type=float, default=0.01, help="fraction of documents replaced")
    parser.add_argument("--block-kb", type=int, default=4, help="the unit of deduplication (RAGSTORE_BACKUP_BLOCK_KB)")
    parser.add_argument("--compression", default="zstd", choices=["zstd", "gzip", "none"])
    parser.add_argument("--level", type=int, default=1, help="RAGSTORE_BACKUP_COMPRESSION_LEVEL")
    parser.add_argument("--threads", type=int, default=3)
    parser.add_argument("--encrypt", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the store for a rerun")
    parser.add_argument("--quick", action="store_true", help="skip verify and the restores (to compare settings)")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()

    root: Path = args.data_dir
    work = root / "work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    settings = Settings(
        data_dir=root / "store",
        lexical_analyzer="bigram",
        backup_repository=str(work / "repo"),
        backup_staging_dir=str(work / "staging"),
        backup_block_kb=args.block_kb,
        backup_compression=args.compression,
        backup_compression_level=args.level,
        backup_threads=args.threads,
        backup_encryption_key=generate_key() if args.encrypt else None,
        backup_schedule_full="",
        backup_schedule_incremental="",
        check_schedule="",
        query_log=False,
    )
    embedder = NoEmbedder(args.dim)
    console.print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    with RagStore.open(settings, embedder=embedder) as store:
        if COLLECTION not in {c.name for c in store.collections.list()}:
            store.collections.create(COLLECTION, embedding_model=MODEL, dimension=args.dim)
            load_s = load(store, args.docs, args.dim, args.seed)
            console.print(f"loaded {args.docs:,} documents in {load_s:.0f} s")
        files = store_files(settings)
        size = sum(p.stat().st_size for p in files)
        console.print(
            f"store: {size / 1e9:.2f} GB in {len(files)} files ({files[0].stat().st_size / 1e9:.2f} GB database)"
        )
        rows: list[tuple[str, float, int, str]] = []

        # The raw limit: cp, then cp + sync (a backup must be durable).
        copy_dir = work / "cp"
        copy_dir.mkdir()
        cp_s, _ = timed(lambda: subprocess.run(["cp", *map(str, files), str(copy_dir)], check=True))
        sync_s, _ = timed(lambda: subprocess.run(["sync"], check=True))
        rows.append(("cp", cp_s, size, "page cache only"))
        rows.append(("cp + sync", cp_s + sync_s, size, "the raw limit (durable)"))
        shutil.rmtree(copy_dir)
        api_target = work / "online-backup.db"
        api_s, _ = timed(lambda: _sqlite_backup(files[0], api_target))
        rows.append(("SQLite online backup API", api_s, files[0].stat().st_size, "database only, no compression"))
        api_target.unlink()
        if shutil.which("zstd"):
            tar_s, _ = timed(
                lambda: subprocess.run(
                    f"tar -cf - -C {settings.data_dir} ragstore.db index"
                    f" | zstd -q -T0 -3 -o {work / 'peer.tar.zst'} && sync",
                    shell=True,
                    check=True,
                )
            )
            rows.append(
                (
                    "tar | zstd -T0 -3 + sync",
                    tar_s,
                    size,
                    f"{(work / 'peer.tar.zst').stat().st_size / 1e6:,.0f} MB; not consistent while writing",
                )
            )
            (work / "peer.tar.zst").unlink()

        full_s, full = timed(lambda: store.backups.create("full", note="bench"))
        rows.append(
            (
                "ragstore backup --kind full",
                full_s,
                full.logical_bytes,
                f"stored {full.stored_bytes / 1e6:,.0f} MB",
            )
        )
        noop_s, noop = timed(lambda: store.backups.create("incremental"))
        rows.append(
            (
                "ragstore incremental, nothing changed",
                noop_s,
                noop.logical_bytes,
                f"stored {noop.stored_bytes / 1e6:,.2f} MB",
            )
        )
        changed = change_documents(store, args.docs, args.change, args.dim, args.seed)
        inc_s, inc = timed(lambda: store.backups.create("incremental"))
        share = inc.stored_bytes / full.stored_bytes
        rows.append(
            (
                f"ragstore incremental, {changed:,} docs replaced",
                inc_s,
                inc.logical_bytes,
                f"stored {inc.stored_bytes / 1e6:,.1f} MB = {share:.1%} of the full",
            )
        )
        # Where the full backup's time went: its manifest's phases; the rest of the wall time is the final sync.
        timings = open_repository(settings, create=False).manifest(full.id).timings
        full_phases = ", ".join(f"{k.removesuffix('_s')} {v:.2f} s" for k, v in timings.items())
        full_phases += f", sync and manifest {full_s - timings['total_s']:.2f} s"
        split: Table | None = None
        result: RestoreReport | None = None
    if not args.quick:
        with RagStore.open(settings, embedder=embedder) as store:
            verify_s, _ = timed(lambda: store.backups.verify(inc.id))
            rows.append(("ragstore backup verify (incremental)", verify_s, inc.logical_bytes, "reassemble + checks"))
            repo = open_repository(settings, create=False)
            split = Table(
                "file", "size MB", "units", "stored by the incremental", title="what the incremental stored, by file"
            )
            for f in repo.manifest(inc.id).files:
                own = f.map.startswith(f"maps/{inc.id}/")
                stored = f"{f.new_units:,} ({f.new_units / max(1, f.units):.1%})" if own else "named from the full"
                split.add_row(f.path, f"{f.size / 1e6:,.1f}", f"{f.units:,}", stored)
        restore_s, result = timed(lambda: restore_backup(settings, inc.id, to=str(work / "restored")))
        rows.append(
            (
                "ragstore backup restore --to (incremental)",
                restore_s,
                inc.logical_bytes,
                f"consistency problems: {result.consistency.problems}",
            )
        )
        snap_settings = settings
        with RagStore.open(snap_settings, embedder=embedder) as store:
            made = store.backups.create("snapshot")
            assert made is not None
            snap: BackupSummary = made
        rebuild_s, rebuilt = timed(lambda: restore_backup(settings, snap.id, to=str(work / "rebuilt")))
        rows.append(
            (
                "restore of a snapshot (index rebuilt from SQL)",
                rebuild_s,
                snap.logical_bytes,
                f"consistency problems: {rebuilt.consistency.problems}",
            )
        )

    table = Table(
        "operation", "seconds", "MB/s", "vs cp + sync", "note", title=f"backups of a {size / 1e9:.2f} GB store"
    )
    limit = size / (cp_s + sync_s)
    for name, seconds, nbytes, note in rows:
        rate = nbytes / seconds
        table.add_row(name, f"{seconds:.2f}", f"{rate / 1e6:,.0f}", f"{rate / limit:.2f}x", note)
    console.print(table)
    if split is not None:
        console.print(split)
    phases = (
        f"; restore phases: verify {result.verify.total_s} s, open + check {result.open_and_check_s} s"
        if result is not None
        else ""
    )
    console.print(
        f"block size {args.block_kb} KiB, {args.compression} level {args.level}, {args.threads} threads, "
        f"encrypted: {args.encrypt}; the full backup took {full.seconds} s{phases}"
    )
    console.print(
        f"full backup phases: {full_phases} (a live SQLite database is stored in place, beside the index files, "
        "while its counts are taken)"
    )
    console.print(
        f"targets: full >= 0.50x cp + sync ({(full.logical_bytes / full_s) / limit:.2f}x); "
        f"incremental <= 5 % ({share:.1%})"
    )
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


def _sqlite_backup(source: Path, target: Path) -> None:
    src, dst = sqlite3.connect(source), sqlite3.connect(target)
    src.backup(dst)
    dst.close()
    src.close()
    subprocess.run(["sync"], check=True)


if __name__ == "__main__":
    main()
