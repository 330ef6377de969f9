"""Which ANN library the embedded index is built on: usearch, hnswlib and faiss on the same data.

    python bench/ann_libraries.py [--n 100000] [--queries 300]

Each library gets HNSW with M=16, ef_construction=64, ef_search=64 on 384-d clustered, L2-normalised
vectors (inner product = cosine), vectors added in batches of 1,000. Besides speed and recall it checks
what the embedded index needs: removing a vector for good and re-adding the same id (an upsert).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
from rich.console import Console
from rich.table import Table

console = Console()
M, EF_ADD, EF = 16, 64, 64
K = 10
DIM = 384


def dataset(n: int, queries: int, seed: int = 7) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Clustered, L2-normalised vectors and exact top-k by brute force (the same recipe as core.py)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(max(10, n // 100), DIM)).astype(np.float32)

    def draw(m: int) -> np.ndarray:
        v = centres[rng.integers(0, len(centres), m)] + 0.35 * rng.normal(size=(m, DIM)).astype(np.float32)
        return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)

    data, qs = draw(n), draw(queries)
    truth = np.empty((queries, K), dtype=np.int64)
    for start in range(0, queries, 100):
        truth[start : start + 100] = np.argsort(-(qs[start : start + 100] @ data.T), axis=1)[:, :K]
    return data, qs, truth


def measure(
    add: Callable[[np.ndarray, np.ndarray], None],
    search: Callable[[np.ndarray], list[int]],
    data: np.ndarray,
    qs: np.ndarray,
    truth: np.ndarray,
) -> tuple[float, float, float, float]:
    keys = np.arange(len(data), dtype=np.int64)
    started = time.perf_counter()
    for s in range(0, len(data), 1000):
        add(keys[s : s + 1000], data[s : s + 1000])
    rate = len(data) / (time.perf_counter() - started)
    for q in qs[:20]:
        search(q)
    times, hits = [], 0
    for q, true in zip(qs, truth, strict=True):
        t = time.perf_counter()
        found = search(q)
        times.append((time.perf_counter() - t) * 1000)
        hits += len(set(found) & set(true.tolist()))
    return rate, float(np.percentile(times, 50)), float(np.percentile(times, 99)), hits / (len(qs) * K)


def usearch_row(data: np.ndarray, qs: np.ndarray, truth: np.ndarray, dtype: str = "f32") -> list[str]:
    from usearch.index import Index

    index = Index(
        ndim=data.shape[1], metric="cos", dtype=dtype, connectivity=M, expansion_add=EF_ADD, expansion_search=EF
    )
    figures = measure(
        lambda k, v: index.add(k.astype(np.uint64), v),
        lambda q: [int(x) for x in index.search(q, K).keys],
        data,
        qs,
        truth,
    )
    index.remove(np.array([5], dtype=np.uint64))
    gone = 5 not in {int(x) for x in index.search(data[5], K).keys}
    index.add(np.array([5], dtype=np.uint64), data[5:6])
    back = int(index.search(data[5], 1).keys[0]) == 5
    return [f"usearch ({dtype})", *fmt(figures), "true removal" if gone else "NO", "yes" if back else "NO"]


def hnswlib_row(data: np.ndarray, qs: np.ndarray, truth: np.ndarray) -> list[str]:
    import hnswlib

    index = hnswlib.Index(space="ip", dim=data.shape[1])
    index.init_index(max_elements=len(data) + 10, M=M, ef_construction=EF_ADD, allow_replace_deleted=True)
    index.set_ef(EF)
    figures = measure(
        lambda k, v: index.add_items(v, k), lambda q: [int(x) for x in index.knn_query(q, k=K)[0][0]], data, qs, truth
    )
    index.mark_deleted(5)
    gone = 5 not in {int(x) for x in index.knn_query(data[5], k=K)[0][0]}
    index.unmark_deleted(5)
    back = int(index.knn_query(data[5], k=1)[0][0][0]) == 5
    return ["hnswlib", *fmt(figures), "mark only" if gone else "NO", "unmark/replace" if back else "NO"]


def faiss_row(data: np.ndarray, qs: np.ndarray, truth: np.ndarray) -> list[str]:
    import faiss

    hnsw = faiss.IndexHNSWFlat(data.shape[1], M, faiss.METRIC_INNER_PRODUCT)
    hnsw.hnsw.efConstruction = EF_ADD
    hnsw.hnsw.efSearch = EF
    index = faiss.IndexIDMap2(hnsw)
    figures = measure(
        lambda k, v: index.add_with_ids(v, k),
        lambda q: [int(x) for x in index.search(q[None, :], K)[1][0]],
        data,
        qs,
        truth,
    )
    try:
        index.remove_ids(np.array([5], dtype=np.int64))
        removal = "yes"
    except RuntimeError:
        removal = "NO (HNSW cannot remove)"
    return ["faiss IndexHNSWFlat", *fmt(figures), removal, "NO"]


def fmt(figures: tuple[float, float, float, float]) -> list[str]:
    rate, p50, p99, recall = figures
    return [f"{rate:,.0f}", f"{p50:.3f}", f"{p99:.3f}", f"{recall:.4f}"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=300)
    args = parser.parse_args()
    data, qs, truth = dataset(args.n, args.queries)
    table = Table(title=f"HNSW M={M} ef_construction={EF_ADD} ef_search={EF}, {args.n:,} x {data.shape[1]}-d")
    for col in ("library", "add/s", "p50 ms", "p99 ms", "recall@10", "delete", "re-add same id"):
        table.add_column(col)
    for row in (usearch_row, lambda d, q, t: usearch_row(d, q, t, "f16"), hnswlib_row, faiss_row):
        try:
            table.add_row(*row(data, qs, truth))
        except ImportError as exc:
            table.add_row(row.__name__, f"not installed ({exc.name}): pip install -e '.[bench]'", "", "", "", "", "")
    console.print(table)


if __name__ == "__main__":
    main()
