"""The whole store at scale (issue #22): ingest, every search kind's p50/p99, memory, sizes, a consistency
check, a full backup and a restore, on one store of (by default) 1,000,000 chunks.

    python bench/scale.py --data-dir /tmp/scale-1m                      # SQLite; a rerun reuses the store
    python bench/scale.py --chunks 100000 --data-dir /tmp/scale-100k    # the same at 100k
    python bench/scale.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/scale --data-dir DIR
    python bench/scale.py --analyzer bigram ...                          # the analyzer without ragstore[korean]

The corpus is bench/search_speed.py's (generated Korean text with English words, precomputed clustered
384-d vectors, documents of 5 chunks with `shard` and `year` metadata), loaded with `wait=False` so SQL writes
and index inserts overlap as in any bulk load. Every query is new (no cache answers). Filters: `shard` 3 keeps
10 % of the chunks, `shard` in 0..4 keeps 50 %. Resident memory is the process's own (`/proc/self/status`):
after opening the loaded store, and its peak over the searches (each search kind builds what it keeps in
memory: the index replica, the in-memory BM25 postings, a filter's allowed ids). The companion model is off
(`RAGSTORE_COMPANION_MODEL=none`): it would embed each chunk a second time at ingest. Prints tables; no
assertion.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from ragstore import RagStore
from ragstore.config import Settings
from ragstore.service import restore_backup
from search_speed import DIM, NoEmbedder, corpus, pct, queries

console = Console()
TEN_PERCENT = {"shard": 3}
HALF = {"shard": {"$in": [0, 1, 2, 3, 4]}}


def load(store: RagStore, texts: list[str], vectors: np.ndarray, per_doc: int = 5, batch_docs: int = 500) -> float:
    """bench/search_speed.py's load (the same documents and metadata), one batch of documents built at a time:
    a million vectors as Python lists at once would take 12 GB."""
    started = time.perf_counter()
    for first in range(0, len(texts), per_doc * batch_docs):
        docs = []
        for d in range(first, min(first + per_doc * batch_docs, len(texts)), per_doc):
            n = d // per_doc
            chunks = [{"text": texts[i], "vector": vectors[i].tolist()} for i in range(d, min(d + per_doc, len(texts)))]
            docs.append(
                {
                    "title": f"doc {n}",
                    "source_uri": f"bench:{n}",
                    "metadata": {"shard": n % 10, "year": 2015 + n % 10},
                    "chunks": chunks,
                }
            )
        store.documents.add("speed", docs, wait=False)
    store.index.wait()
    loaded = time.perf_counter() - started
    with store.db.engine.begin() as conn:  # planner statistics, as after any bulk load
        conn.exec_driver_sql("ANALYZE")
    return loaded


def drop_restored(database_url: str, data_dir: Path) -> None:
    """Drop the PostgreSQL restore's database and its folder (a rerun would otherwise restore beside them)."""
    url = make_url(database_url)
    restored = f"{url.database}_restored"
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{restored}" WITH (FORCE)'))
    finally:
        admin.dispose()
    shutil.rmtree(data_dir / f"restored-{restored}", ignore_errors=True)


def memory_mib() -> tuple[float, float]:
    """(resident now, peak resident) of this process in MiB."""
    found = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = int(value.split()[0]) / 1024
    return found.get("VmRSS", 0.0), found.get("VmHWM", 0.0)


def tree_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.exists() else 0


def database_bytes(store: RagStore, data_dir: Path) -> int:
    if store.db.is_sqlite:
        return sum(p.stat().st_size for p in data_dir.glob("ragstore.db*"))
    return int(store.db.fetch(text("SELECT pg_database_size(current_database())"))[0][0])


def timed_each(fn: Callable[[Any], Any], items: list[Any]) -> tuple[float, float]:
    """p50 and p99 in ms over `items` (the first tenth warms up and is not counted)."""
    warm = max(1, len(items) // 10)
    for item in items[:warm]:
        fn(item)
    times = []
    for item in items[warm:]:
        started = time.perf_counter()
        fn(item)
        times.append((time.perf_counter() - started) * 1000)
    return pct(times, 0.5), pct(times, 0.99)


def searches(store: RagStore, asked: list[tuple[str, list[float]]]) -> list[tuple[str, float, float]]:
    kinds: list[tuple[str, Callable[[tuple[str, list[float]]], Any]]] = [
        ("dense", lambda q: store.search("speed", vector=q[1], k=10, mode="dense")),
        ("lexical", lambda q: store.search("speed", q[0], k=10, mode="lexical")),
        ("hybrid", lambda q: store.search("speed", q[0], vector=q[1], k=10, mode="hybrid")),
        ("dense, filter 10 %", lambda q: store.search("speed", vector=q[1], k=10, filter=TEN_PERCENT)),
        ("dense, filter 50 %", lambda q: store.search("speed", vector=q[1], k=10, filter=HALF)),
        ("lexical, filter 10 %", lambda q: store.search("speed", q[0], k=10, mode="lexical", filter=TEN_PERCENT)),
        ("hybrid, filter 10 %", lambda q: store.search("speed", q[0], vector=q[1], k=10, filter=TEN_PERCENT)),
    ]
    rows = []
    for i, (name, fn) in enumerate(kinds):
        # Each kind gets its own queries: a text or vector asked before would be answered by the result cache.
        mine = [(f"{t} k{i}", v) for t, v in asked]
        first = time.perf_counter()
        fn(mine[0])  # what the first search of its kind builds (the lexical postings, a filter's ids)
        first_ms = (time.perf_counter() - first) * 1000
        p50, p99 = timed_each(fn, mine[1:])
        rows.append((name, p50, p99, first_ms))
        console.print(f"  {name}: p50 {p50:.2f} ms, p99 {p99:.2f} ms, first {first_ms:,.0f} ms")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chunks", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument(
        "--data-dir", type=Path, required=True, help="the store (a rerun measures it again without loading)"
    )
    parser.add_argument("--database-url", default=None, help="PostgreSQL instead of SQLite in the data dir")
    parser.add_argument(
        "--analyzer", default="auto", help="auto (kiwi when ragstore[korean] is installed), kiwi or bigram"
    )
    parser.add_argument("--no-backup", action="store_true", help="skip the backup and the restore")
    args = parser.parse_args()
    args.data_dir.mkdir(parents=True, exist_ok=True)
    overrides: dict[str, Any] = {"database_url": args.database_url} if args.database_url else {}
    settings = Settings(
        data_dir=args.data_dir,
        index_persist_interval_s=3600,
        # The bridge fusion's companion model embeds every chunk a second time at ingest (25 chunks/s on these
        # two cores: 11 hours for a million); hybrid search here fuses without it.
        companion_model="none",
        lexical_analyzer=args.analyzer,
        backup_repository=str(args.data_dir / "backups"),
        restore_root=args.data_dir,
        **overrides,
    )
    console.print(
        f"[bold]ragstore at scale[/]  {args.chunks:,} chunks, {'PostgreSQL' if args.database_url else 'SQLite'}, "
        f"analyzer {args.analyzer}; "
        f"{os.cpu_count()} cores, Python {platform.python_version()}"
    )
    saved = args.data_dir / "scale-queries.json"  # the queries and the load's figures, for the measuring run
    if not saved.exists():
        started = time.perf_counter()
        texts, vectors, words_of = corpus(args.chunks)
        asked = queries(words_of, vectors, args.queries)
        console.print(f"corpus generated in {time.perf_counter() - started:.0f} s")
        with RagStore.open(settings, embedder=NoEmbedder()) as store:
            if "speed" in {c.name for c in store.collections.list()}:
                store.collections.delete("speed")
            store.collections.create("speed", embedding_model=NoEmbedder.model, dimension=DIM)
            seconds = load(store, texts, vectors)
        saved.write_text(json.dumps({"queries": asked, "load_s": seconds, "chunks": args.chunks}))
        console.print(f"loaded in {seconds:.0f} s; measuring in a fresh process (its memory is the store's alone)")
        os.execv(sys.executable, [sys.executable, *sys.argv])
    kept = json.loads(saved.read_text())
    asked = [(q, v) for q, v in kept["queries"]]
    facts: list[tuple[str, str]] = [
        ("ingest (SQL and index, vectors given)", f"{kept['chunks'] / kept['load_s']:,.0f} chunks/s"),
        ("load time", f"{kept['load_s']:,.0f} s"),
    ]
    with RagStore.open(settings, embedder=NoEmbedder()) as store:
        rss, _ = memory_mib()
        facts.append(("resident memory after open", f"{rss:,.0f} MiB"))
        rows = searches(store, asked)
        rss, peak = memory_mib()
        facts.append(("resident memory after the searches (peak)", f"{rss:,.0f} MiB ({peak:,.0f} MiB)"))
        facts.append(("database size", f"{database_bytes(store, args.data_dir) / 2**20:,.0f} MiB"))
        facts.append(("index files", f"{tree_bytes(args.data_dir / 'index') / 2**20:,.0f} MiB"))
        check_started = time.perf_counter()
        report = store.consistency.check()
        facts.append(("consistency check", f"{time.perf_counter() - check_started:.1f} s, {report.problems} problems"))
        made = None
        if not args.no_backup:
            shutil.rmtree(args.data_dir / "backups", ignore_errors=True)
            backup_started = time.perf_counter()
            made = store.backups.create("full", note="scale")
            assert made is not None
            seconds = time.perf_counter() - backup_started
            facts.append(
                (
                    "full backup",
                    f"{seconds:.1f} s, {made.logical_bytes / 1e6 / seconds:,.0f} MB/s, "
                    f"stored {made.stored_bytes / 2**20:,.0f} MiB",
                )
            )
    if made is not None:
        # SQLite: a new folder; PostgreSQL: a new database on the same server (its index files in a new folder).
        target = str(args.data_dir / "restored")
        if args.database_url:
            url = make_url(args.database_url)
            target = url.set(database=f"{url.database}_restored").render_as_string(hide_password=False)
        shutil.rmtree(args.data_dir / "restored", ignore_errors=True)
        restore_started = time.perf_counter()
        result = restore_backup(settings, made.id, to=target)
        facts.append(
            (
                "restore --to (with the index files)",
                f"{time.perf_counter() - restore_started:.1f} s, {result.consistency.problems} problems",
            )
        )
        shutil.rmtree(args.data_dir / "restored", ignore_errors=True)
        if args.database_url:
            drop_restored(args.database_url, args.data_dir)

    table = Table("search (k 10, uncached)", "p50 ms", "p99 ms", "first of its kind ms", title="searches")
    for name, p50, p99, first_ms in rows:
        table.add_row(name, f"{p50:.2f}", f"{p99:.2f}", f"{first_ms:,.0f}")
    console.print(table)
    table = Table("measure", "value", title=f"the store at {args.chunks:,} chunks")
    for name, value in facts:
        table.add_row(name, value)
    console.print(table)


if __name__ == "__main__":
    main()
