"""Which Milvus index type at which size: FLAT against HNSW on Milvus Lite, search latency and recall.

    python bench/milvus_index.py                      # sizes 5k, 20k, 50k, 100k; 384-d; 200 queries

FLAT is exact and has nothing to build; HNSW answers in sub-linear time but costs a build after every
flush. The crossing point is where `MILVUS_HNSW_THRESHOLD` belongs. Vectors are clustered random unit
vectors (as in bench/core.py); recall@10 of HNSW is against FLAT's exact answer. Prints a table.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from ragstore.vectors.base import CollectionSpec
from ragstore.vectors.milvus import MilvusVectorIndex

console = Console()


def clustered(n: int, dim: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(max(n // 500, 8), dim)).astype(np.float32)
    data = centres[rng.integers(0, len(centres), n)] + 0.35 * rng.normal(size=(n, dim)).astype(np.float32)
    return (data / np.linalg.norm(data, axis=1, keepdims=True)).astype(np.float32)


def measure(size: int, dim: int, queries: int, index_type: str) -> tuple[float, float, float, list[list[int]]]:
    """(load+build seconds, search p50 ms, search p99 ms, result ids) for one index type at one size."""
    data = clustered(size, dim, 7)
    qs = data[np.random.default_rng(3).integers(0, size, queries)] + 0.01
    with tempfile.TemporaryDirectory() as tmp:
        threshold = 0 if index_type == "HNSW" else 10**9
        index = MilvusVectorIndex(str(Path(tmp) / "m.db"), hnsw_threshold=threshold)
        started = time.perf_counter()
        index.ensure_collection(CollectionSpec(1, dim))
        for start in range(0, size, 10_000):
            index.upsert(
                1, np.arange(start + 1, min(start + 10_000, size) + 1, dtype=np.int64), data[start : start + 10_000]
            )
        index.persist()  # flush, and switch to HNSW when past the threshold
        assert index.index_type(1) == index_type
        index.search(1, qs[0], 10)  # the first search waits for the index to be ready
        built = time.perf_counter() - started
        times, results = [], []
        for q in qs:
            t = time.perf_counter()
            hits = index.search(1, q, 10)
            times.append((time.perf_counter() - t) * 1000)
            results.append([h.id for h in hits])
        index.close()
    times.sort()
    return built, statistics.median(times), times[int(len(times) * 0.99) - 1], results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="5000,20000,50000,100000")
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()
    table = Table(
        title=f"Milvus Lite, {args.dim}-d, {args.queries} queries: FLAT against HNSW (M 16, efConstruction 200, ef 64)"
    )
    for col in (
        "vectors",
        "FLAT load s",
        "FLAT p50 ms",
        "FLAT p99 ms",
        "HNSW load+build s",
        "HNSW p50 ms",
        "HNSW p99 ms",
        "HNSW recall@10",
    ):
        table.add_column(col, justify="right")
    for size in (int(s) for s in args.sizes.split(",")):
        flat = measure(size, args.dim, args.queries, "FLAT")
        hnsw = measure(size, args.dim, args.queries, "HNSW")
        recall = float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(flat[3], hnsw[3], strict=True)]))
        table.add_row(
            f"{size:,}",
            f"{flat[0]:.1f}",
            f"{flat[1]:.2f}",
            f"{flat[2]:.2f}",
            f"{hnsw[0]:.1f}",
            f"{hnsw[1]:.2f}",
            f"{hnsw[2]:.2f}",
            f"{recall:.3f}",
        )
        console.print(f"done {size}")
    console.print(table)


if __name__ == "__main__":
    main()
