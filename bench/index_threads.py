"""Parallel against single-threaded HNSW inserts: speed, and vectors that no search can reach.

    python bench/index_threads.py              # 20,000 vectors per set, 3 seeds
    python bench/index_threads.py --n 5000 --seeds 1

usearch's parallel `add` can leave a vector stored (`contains` is true, `get` returns it) but unreachable
by any graph search (USearch #735). The embedded index therefore inserts with one thread. This measures
what that costs and what it buys, beside hnswlib's parallel insert (the peer), on uniform 16-d vectors
(where a graph search finds nearly everything, so a miss is a stranded vector) and on clustered 384-d
vectors like embeddings. A vector counts as *stranded* when a search by its own vector with a beam of 1,024
(`expansion_search`) does not return it in the top 10; *self-miss@1* is the plain search at the index's
own ef=64. Prints a table; no assertion.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from rich.console import Console
from rich.table import Table

from ragstore.config import Settings

if TYPE_CHECKING:
    from usearch.index import Index

WIDE_BEAM = 1024


@dataclass
class Row:
    data: str
    library: str
    threads: int
    seed: int
    insert_per_s: float
    stranded: int
    self_miss: int


def uniform(n: int, dim: int, seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def clustered(n: int, dim: int, seed: int) -> np.ndarray:
    """Gaussian clusters around n/100 centres, normalised: the shape bench/core.py uses for embeddings."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(max(10, n // 100), dim)).astype(np.float32)
    v = centres[rng.integers(0, len(centres), n)] + 0.35 * rng.normal(size=(n, dim)).astype(np.float32)
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


def misses(search: Callable[[np.ndarray, int], np.ndarray], data: np.ndarray, k: int) -> int:
    keys = np.arange(len(data))
    found = np.asarray(search(data, k)).reshape(len(data), k)
    return int((~(found == keys[:, None]).any(axis=1)).sum())


def ragstore_index(ndim: int) -> Index:
    """An empty usearch index with the embedded index's own parameters (config.py's defaults)."""
    from usearch.index import Index

    s = Settings()
    return Index(
        ndim=ndim,
        metric="cos",
        dtype=s.index_dtype,
        connectivity=s.hnsw_connectivity,
        expansion_add=s.hnsw_expansion_add,
        expansion_search=s.hnsw_expansion_search,
    )


def bench_usearch(data: np.ndarray, threads: int) -> tuple[float, int, int]:
    index = ragstore_index(data.shape[1])
    keys = np.arange(len(data), dtype=np.uint64)
    started = time.perf_counter()
    for start in range(0, len(data), 1000):  # batches, as ingest and rebuilds send them
        index.add(keys[start : start + 1000], data[start : start + 1000], threads=threads)
    rate = len(data) / (time.perf_counter() - started)

    def search(q: np.ndarray, k: int) -> np.ndarray:
        return np.asarray(index.search(q, k).keys, dtype=np.int64)

    self_miss = misses(search, data, 1)
    index.expansion_search = WIDE_BEAM
    return rate, misses(search, data, 10), self_miss


def bench_hnswlib(data: np.ndarray, threads: int) -> tuple[float, int, int] | None:
    try:
        import hnswlib  # type: ignore[import-not-found]
    except ImportError:
        return None
    s = Settings()
    index = hnswlib.Index(space="cosine", dim=data.shape[1])
    index.init_index(max_elements=len(data), M=s.hnsw_connectivity, ef_construction=s.hnsw_expansion_add)
    index.set_num_threads(threads or os.cpu_count() or 1)
    keys = np.arange(len(data))
    started = time.perf_counter()
    for start in range(0, len(data), 1000):
        index.add_items(data[start : start + 1000], keys[start : start + 1000])
    rate = len(data) / (time.perf_counter() - started)

    def search(q: np.ndarray, k: int) -> np.ndarray:
        return np.asarray(index.knn_query(q, k=k)[0], dtype=np.int64)

    index.set_ef(s.hnsw_expansion_search)
    self_miss = misses(search, data, 1)
    index.set_ef(WIDE_BEAM)
    return rate, misses(search, data, 10), self_miss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=20_000, help="vectors per set")
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    console = Console()
    console.print(f"{args.n:,} vectors per set, {args.seeds} seeds, {os.cpu_count()} cores")
    sets: dict[str, Callable[[int], np.ndarray]] = {
        "uniform 16-d": lambda seed: uniform(args.n, 16, seed),
        "clustered 384-d": lambda seed: clustered(args.n, 384, seed),
    }
    rows: list[Row] = []
    for name, make in sets.items():
        for seed in range(args.seeds):
            data = make(seed)
            for library, run in (("usearch", bench_usearch), ("hnswlib", bench_hnswlib)):
                for threads in (0, 1):
                    got = run(data, threads)
                    if got is not None:
                        rows.append(Row(name, library, threads, seed, *got))
                        r = rows[-1]
                        console.print(
                            f"{name} seed {seed} {library} threads={threads or 'all'}: {r.insert_per_s:,.0f}/s, "
                            f"stranded {r.stranded}, self-miss@1 {r.self_miss}",
                            highlight=False,
                        )
    table = Table(title=f"HNSW inserts, parallel and single-threaded ({args.n:,} vectors, {args.seeds} seeds)")
    for col in ("vectors", "library", "insert threads", "insert/s (median)", "stranded (each seed)", "self-miss@1"):
        table.add_column(col, justify="left" if col in ("vectors", "library") else "right")
    groups: dict[tuple[str, str, int], list[Row]] = {}
    for r in rows:
        groups.setdefault((r.data, r.library, r.threads), []).append(r)
    for (data_name, library, threads), group in groups.items():
        table.add_row(
            data_name,
            library,
            "all cores" if threads == 0 else "1" + (" (ragstore)" if library == "usearch" else ""),
            f"{float(np.median([r.insert_per_s for r in group])):,.0f}",
            ", ".join(str(r.stranded) for r in group),
            ", ".join(str(r.self_miss) for r in group),
        )
    console.print(table)


if __name__ == "__main__":
    main()
