"""Self-tuning ef_search against held-out queries and hand-picked settings, at 10k, 100k and 1M vectors.

    python bench/ef_tuning.py                         # 10,000 and 100,000 vectors
    python bench/ef_tuning.py --sizes 10000,100000,1000000 --queries 1000

For each size: clustered, L2-normalised 384-d vectors (Gaussian clusters around n/100 centres, the shape
bench/core.py uses) are added to ragstore's embedded index (usearch HNSW with the store's own parameters and
precision). `vectors/tuning.measure` picks ef for the target (RAGSTORE_TARGET_RECALL's default, 0.98) from
the collection's own vectors, as `ragstore index tune` does. Then held-out queries, drawn from the same
clusters and never added, are searched at every breadth of the ladder ("hand-picked" settings) and at the
chosen one: recall@10 against numpy's exact top 10 over all vectors, and the p50 of one search.

Target (issue #22): the held-out recall at the chosen breadth within 0.01 of the target, and its p50 no higher
than the best hand-picked setting's, the smallest breadth whose held-out recall meets the target. Prints a
table per size; asserts nothing.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from ragstore.config import Settings
from ragstore.vectors.base import CollectionSpec
from ragstore.vectors.embedded import EmbeddedVectorIndex
from ragstore.vectors.tuning import LADDER, measure

console = Console()
DIM = 384
K = 10
ADD_BATCH = 10_000
HAND_PICKED = (16, *LADDER)  # the tuner's ladder and one breadth below its foot: a hand could pick that too


def clustered(n: int, seed: int) -> np.ndarray:
    """n vectors around n/100 Gaussian centres (the last rows are the held-out queries' share of the draw)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(max(10, n // 100), DIM)).astype(np.float32)
    out = np.empty((n, DIM), dtype=np.float32)
    for start in range(0, n, 100_000):
        m = min(100_000, n - start)
        v = centres[rng.integers(0, len(centres), m)] + 0.35 * rng.normal(size=(m, DIM)).astype(np.float32)
        out[start : start + m] = v / np.linalg.norm(v, axis=1, keepdims=True)
    return out


def exact(data: np.ndarray, queries: np.ndarray) -> np.ndarray:
    best = np.empty((len(queries), K), dtype=np.int64)
    for start in range(0, len(queries), 256):
        scores = queries[start : start + 256] @ data.T
        top = np.argpartition(-scores, K - 1, axis=1)[:, :K]
        best[start : start + 256] = top
    return best


def held_out(index: EmbeddedVectorIndex, queries: np.ndarray, truth: np.ndarray, ef: int) -> tuple[float, float]:
    """Recall@10 and p50 (µs) of the held-out queries at one breadth, through the index as a search runs."""
    index.set_expansion_search(1, ef)
    for q in queries[:20]:
        index.search(1, q, K)
    times, recalls = [], []
    for q, true in zip(queries, truth, strict=True):
        started = time.perf_counter()
        hits = index.search(1, q, K)
        times.append(time.perf_counter() - started)
        recalls.append(len(set(true.tolist()) & {h.id for h in hits}) / K)
    return float(np.mean(recalls)), statistics.median(times) * 1e6


def run(size: int, queries_n: int, target: float, seed: int) -> None:
    settings = Settings()
    everything = clustered(size + queries_n, seed)
    data, queries = everything[:size], everything[size:]
    with tempfile.TemporaryDirectory(prefix="ragstore-ef-") as tmp:
        index = EmbeddedVectorIndex(
            Path(tmp),
            connectivity=settings.hnsw_connectivity,
            expansion_add=settings.hnsw_expansion_add,
            expansion_search=settings.hnsw_expansion_search,
            dtype=settings.index_dtype,
        )
        index.ensure_collection(CollectionSpec(1, DIM))
        started = time.perf_counter()
        for start in range(0, size, ADD_BATCH):
            ids = np.arange(start, min(size, start + ADD_BATCH), dtype=np.int64)
            index.upsert(1, ids, data[start : start + ADD_BATCH])
        built = time.perf_counter() - started
        truth = exact(data, queries)
        measured = measure(index, 1, target)
        assert measured.ef is not None
        rows = []
        for ef in sorted(set(HAND_PICKED) | {settings.hnsw_expansion_search, measured.ef}):
            recall, p50 = held_out(index, queries, truth, ef)
            rows.append((ef, recall, p50))
            if recall >= target + 0.01 and ef > max(measured.ef, settings.hnsw_expansion_search):
                break
        index.close()
    best = next(((ef, r, p) for ef, r, p in rows if r >= target), rows[-1])
    chosen = next(row for row in rows if row[0] == measured.ef)
    sampled = {p.ef: p.recall for p in measured.curve}
    title = f"{size:,} vectors: tune picked ef {measured.ef} in {measured.seconds:.1f} s (built {built:.0f} s)"
    table = Table(title=title)
    for col in ("ef", "tune's recall (sampled)", "held-out recall@10", "held-out p50 µs", ""):
        table.add_column(col, justify="right")
    for ef, recall, p50 in rows:
        mark = "chosen by tune" if ef == measured.ef else ""
        if ef == best[0]:
            mark = (mark + ", " if mark else "") + "best hand-picked"
        if ef == settings.hnsw_expansion_search:
            mark = (mark + ", " if mark else "") + "global default"
        table.add_row(str(ef), f"{sampled[ef]:.4f}" if ef in sampled else "", f"{recall:.4f}", f"{p50:.1f}", mark)
    console.print(table)
    console.print(
        f"target {target}: held-out recall at the chosen ef {chosen[1]:.4f} (off by {chosen[1] - target:+.4f}); "
        f"p50 {chosen[2]:.1f} µs against the best hand-picked ef {best[0]}'s {best[2]:.1f} µs "
        f"({chosen[2] / best[2]:.2f}x)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--queries", type=int, default=1000, help="held-out queries per size")
    parser.add_argument("--target", type=float, default=Settings().target_recall)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    console.print(f"{platform.machine()}, {platform.python_version()}, {Settings().index_dtype} index")
    for size in (int(s) for s in args.sizes.split(",")):
        run(size, args.queries, args.target, args.seed)


if __name__ == "__main__":
    main()
