"""The embedded index's precision (RAGSTORE_INDEX_DTYPE f32 | f16 | i8): memory, recall@10 and search p50.

    python bench/index_dtype.py                 # 100,000 vectors of 384 dimensions, 300 queries
    python bench/index_dtype.py --vectors 200000
    python bench/index_dtype.py --keep /tmp/dtype-100k     # keep the stores: a rerun only measures

Each precision gets its own store (SQLite, vectors given, no model), loaded through the facade; then a new
process opens it, searches (dense, k 10, the result cache off) and reports its peak resident memory. The
same process opening an empty store gives the baseline, so *index memory* is what the collection adds to a
process (resident memory after the searches, the empty store's subtracted), and *per 1M vectors* scales
it (memory grows linearly with the vectors). Chroma (PersistentClient,
cosine HNSW) is measured the same way on the same vectors. recall@10 is against numpy's exact top 10; i8
re-ranks its candidates with the float32 vectors SQL holds (search/rerank.py).

Target (issue #22): i8 memory <= 0.35x of f32 with recall@10 >= 0.97.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

console = Console()
DIM = 384
K = 10


def dataset(n: int, queries: int, seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(max(10, n // 100), DIM)).astype(np.float32)

    def draw(m: int) -> np.ndarray:
        v = centres[rng.integers(0, len(centres), m)] + 0.35 * rng.normal(size=(m, DIM)).astype(np.float32)
        return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)

    return draw(n), draw(queries)


def rss_kb() -> int:
    """Resident memory now (not the peak: a peak would catch whatever a background thread briefly held)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _settings(folder: Path, dtype: str) -> object:
    from ragstore.config import Settings

    # SQLite's page cache at its floor: it is bounded (RAGSTORE_SQLITE_CACHE_SIZE_MB a connection, 64 by
    # default) and does not grow with the vectors, but i8's re-rank reads fill it with `embeddings` pages,
    # which a figure scaled to 1M vectors would multiply as if they were index memory.
    return Settings(
        data_dir=folder,
        index_dtype=dtype,
        lexical_analyzer="bigram",
        query_log=False,
        search_cache_ttl_s=0,
        sqlite_cache_size_mb=1,
    )


def load(folder: Path, dtype: str, n: int) -> None:
    from ragstore import RagStore

    vectors, _ = dataset(n, 1)
    with RagStore.open(_settings(folder, dtype), start_worker=True) as store:  # type: ignore[arg-type]
        store.collections.create("v", embedding_model="given", dimension=DIM)
        for start in range(0, n, 2000):
            store.documents.add(
                "v",
                [
                    {"source_uri": f"s{i}", "chunks": [{"text": f"chunk {i}", "vector": vectors[i].tolist()}]}
                    for i in range(start, min(n, start + 2000))
                ],
                wait=False,
            )
        store.index.wait()


def probe(folder: Path, dtype: str, n: int, queries: int, empty: bool) -> dict[str, float]:
    """Runs in its own process: open, search, report peak RSS (and recall, p50 unless `empty`)."""
    from ragstore import RagStore

    vectors, qs = dataset(n, queries)
    with RagStore.open(_settings(folder, dtype)) as store:  # type: ignore[arg-type]
        if empty:
            store.collections.create("v", embedding_model="given", dimension=DIM)
            store.search("v", vector=qs[0].tolist(), mode="dense")
            return {"rss_kb": rss_kb()}
        times, found = [], 0
        for q in qs:
            started = time.perf_counter()
            hits = store.search("v", vector=q.tolist(), k=K, mode="dense").hits
            times.append((time.perf_counter() - started) * 1000)
            truth = set(np.argsort(-(vectors @ q))[:K].tolist())
            found += len({int(h.source_uri[1:]) for h in hits} & truth)
        return {
            "rss_kb": rss_kb(),
            "recall": found / (K * len(qs)),
            "p50_ms": float(np.percentile(times[10:], 50)),
        }


def chroma_probe(folder: Path, n: int, queries: int, empty: bool) -> dict[str, float]:
    import chromadb

    vectors, qs = dataset(n, queries)
    client = chromadb.PersistentClient(path=str(folder))
    coll = client.get_or_create_collection("vectors", metadata={"hnsw:space": "cosine"}, embedding_function=None)
    if not empty and coll.count() == 0:
        for s in range(0, n, 5000):
            coll.add(ids=[str(i) for i in range(s, min(n, s + 5000))], embeddings=vectors[s : s + 5000])
        return {}
    if empty:
        coll.query(query_embeddings=[qs[0]], n_results=1)
        return {"rss_kb": rss_kb()}
    times, found = [], 0
    for q in qs:
        started = time.perf_counter()
        ids = coll.query(query_embeddings=[q], n_results=K)["ids"][0]
        times.append((time.perf_counter() - started) * 1000)
        truth = set(np.argsort(-(vectors @ q))[:K].tolist())
        found += len({int(i) for i in ids} & truth)
    return {
        "rss_kb": rss_kb(),
        "recall": found / (K * len(qs)),
        "p50_ms": float(np.percentile(times[10:], 50)),
    }


def raw(n: int, queries: int) -> Table:
    """The index alone, in this process: usearch's own memory count per precision, recall@10 as the graph
    ranks, and recall@10 after an exact re-rank of its top 3k by the float32 vectors (what ragstore does for
    i8 with SQL's copy). ragstore's settings: M 16, ef_construction 64, ef_search 64."""
    from usearch.index import Index

    vectors, qs = dataset(n, queries)
    truth = [set(np.argsort(-(vectors @ q))[:K].tolist()) for q in qs]
    table = Table(title=f"usearch alone at {n:,} vectors (ragstore's parameters)")
    for col in ("dtype", "memory MiB", "per 1M MiB", "vs f32", "recall@10", "recall@10 re-ranked", "build s"):
        table.add_column(col, justify="right")
    base = None
    for dtype in ("f32", "f16", "i8"):
        index = Index(ndim=DIM, metric="cos", dtype=dtype, connectivity=16, expansion_add=64, expansion_search=64)
        started = time.perf_counter()
        index.add(np.arange(n, dtype=np.uint64), vectors, threads=1)
        built = time.perf_counter() - started
        memory = int(index.memory_usage)
        base = base or memory
        plain = reranked = 0
        for q, want in zip(qs, truth, strict=True):
            keys = np.asarray(index.search(q, 3 * K).keys, dtype=np.int64)
            plain += len(set(keys[:K].tolist()) & want)
            exact = keys[np.argsort(-(vectors[keys] @ q))][:K]
            reranked += len(set(exact.tolist()) & want)
        table.add_row(
            dtype,
            f"{memory / 2**20:,.0f}",
            f"{memory / 2**20 * 1_000_000 / n:,.0f}",
            f"{memory / base:.2f}x",
            f"{plain / (K * len(qs)):.4f}",
            f"{reranked / (K * len(qs)):.4f}",
            f"{built:.0f}",
        )
    return table


def _run(*args: str) -> dict[str, float]:
    done = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"the child {' '.join(args[-4:])} failed:\n{done.stderr[-3000:]}")
    out = done.stdout
    return json.loads(out.strip().splitlines()[-1]) if out.strip() else {}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vectors", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--no-chroma", action="store_true")
    parser.add_argument("--keep", type=Path, default=None, help="keep the stores here; a rerun skips the loads")
    parser.add_argument("--raw", action="store_true", help="only the index alone, in this process (fast)")
    parser.add_argument("--child", nargs=4, metavar=("KIND", "FOLDER", "DTYPE", "EMPTY"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, folder, dtype, empty = args.child
        if kind == "load":
            load(Path(folder), dtype, args.vectors)
            return
        if kind == "chroma":
            print(json.dumps(chroma_probe(Path(folder), args.vectors, args.queries, empty == "1")))
            return
        print(json.dumps(probe(Path(folder), dtype, args.vectors, args.queries, empty == "1")))
        return

    console.print(
        f"{args.vectors:,} vectors of {DIM}, {args.queries} queries; {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, usearch {version('usearch')}"
    )
    if args.raw:
        console.print(raw(args.vectors, args.queries))
        return
    tmp = args.keep or Path(tempfile.mkdtemp(prefix="dtype-bench-"))
    tmp.mkdir(parents=True, exist_ok=True)
    rows: list[tuple[str, float, float, float]] = []
    common = ["--vectors", str(args.vectors), "--queries", str(args.queries)]
    try:
        for dtype in ("f32", "f16", "i8"):
            folder = tmp / dtype
            if not (folder / "loaded").exists():
                started = time.perf_counter()
                _run(*common, "--child", "load", str(folder), dtype, "0")
                (folder / "loaded").touch()
                console.print(f"{dtype}: loaded in {time.perf_counter() - started:.0f} s")
            base = _run(*common, "--child", "probe", tempfile.mkdtemp(prefix=f"empty-{dtype}-", dir=tmp), dtype, "1")
            got = _run(*common, "--child", "probe", str(folder), dtype, "0")
            rows.append((f"ragstore {dtype}", got["rss_kb"] - base["rss_kb"], got["recall"], got["p50_ms"]))
            console.print(f"{dtype}: {rows[-1]}")  # each as it comes: a later failure loses nothing
        if not args.no_chroma:
            if not (tmp / "chroma" / "loaded").exists():
                started = time.perf_counter()
                _run(*common, "--child", "chroma", str(tmp / "chroma"), "-", "0")
                (tmp / "chroma" / "loaded").touch()
                console.print(f"chroma: loaded in {time.perf_counter() - started:.0f} s")
            base = _run(*common, "--child", "chroma", tempfile.mkdtemp(prefix="chroma-empty-", dir=tmp), "-", "1")
            got = _run(*common, "--child", "chroma", str(tmp / "chroma"), "-", "0")
            rows.append(("chroma (f32)", got["rss_kb"] - base["rss_kb"], got["recall"], got["p50_ms"]))
    finally:
        if args.keep is None:
            shutil.rmtree(tmp, ignore_errors=True)
    f32 = rows[0][1]
    table = Table(title=f"index precision at {args.vectors:,} vectors")
    for col in ("index", "index memory MiB", "per 1M vectors MiB", "vs ragstore f32", "recall@10", "p50 ms"):
        table.add_column(col, justify="left" if col == "index" else "right")
    for name, kb, recall, p50 in rows:
        table.add_row(
            name,
            f"{kb / 1024:,.0f}",
            f"{kb / 1024 * 1_000_000 / args.vectors:,.0f}",
            f"{kb / f32:.2f}x",
            f"{recall:.4f}",
            f"{p50:.3f}",
        )
    console.print(table)


if __name__ == "__main__":
    main()
