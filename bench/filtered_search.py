"""Filtered dense search at 100,000 chunks (or more): ragstore against unfiltered search, exact truth and Chroma.

    python bench/filtered_search.py                          # 100,000 chunks, SQLite, Chroma beside it
    python bench/filtered_search.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/test
    python bench/filtered_search.py --chunks 1000000 --no-chroma --keep /tmp/filtered-1m

Clustered, L2-normalised 384-d vectors given with the chunks (no model runs), five chunks a document. Every
document carries metadata keys whose values select a known share of the collection: `s50` in {0, 1}, `s10`
in 0..9, `s1` in 0..99 and `s01` in 0..999 (an equality on one of them keeps 50 %, 10 %, 1 % or 0.1 %), and
`rank` in 0..999 (a range: `{"rank": {"$lt": 100}}` keeps 10 %). The values are drawn at random per
document, so a filter is independent of where the vectors lie, as a tenant or a language is.

For each filter: ragstore's p50 and p99 (the result cache off; every query is asked unfiltered and with each
filter in turn, so all meet the same load), recall@10 against the exact filtered top 10
(numpy over the float32 vectors of the allowed chunks), the ratio to ragstore's unfiltered p50 in the same
run, and Chroma's p50 for the same `where` on the same vectors (PersistentClient, cosine HNSW).

Targets (issue #22): each filtered p50 <= 2x the unfiltered p50, recall@10 >= 0.95, >= 20x faster than Chroma.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import nullcontext
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from ragstore import RagStore
from ragstore.config import Settings

console = Console()
DIM = 384
K = 10
PER_DOC = 5
KEYS = {"s50": 2, "s10": 10, "s1": 100, "s01": 1000, "rank": 1000}
FILTERS: list[tuple[str, dict[str, Any], Callable[[dict[str, np.ndarray]], np.ndarray]]] = [
    ("50 % (s50 = 1)", {"s50": 1}, lambda m: m["s50"] == 1),
    ("10 % (s10 = 3)", {"s10": 3}, lambda m: m["s10"] == 3),
    ("10 % (rank < 100)", {"rank": {"$lt": 100}}, lambda m: m["rank"] < 100),
    ("1 % (s1 = 42)", {"s1": 42}, lambda m: m["s1"] == 42),
    ("1 % (s10 = 3 and rank < 100)", {"s10": 3, "rank": {"$lt": 100}}, lambda m: (m["s10"] == 3) & (m["rank"] < 100)),
    ("0.1 % (s01 = 7)", {"s01": 7}, lambda m: m["s01"] == 7),
]


def dataset(n: int, queries: int, seed: int = 7) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Vectors and queries drawn alike from clusters (like real embeddings: bench/core.py's generator), and
    each chunk's metadata values (its document's)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(max(10, n // 100), DIM)).astype(np.float32)

    def draw(m: int) -> np.ndarray:
        v = centres[rng.integers(0, len(centres), m)] + 0.35 * rng.normal(size=(m, DIM)).astype(np.float32)
        return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)

    vectors = np.empty((n, DIM), dtype=np.float32)
    for start in range(0, n, 100_000):
        vectors[start : start + min(100_000, n - start)] = draw(min(100_000, n - start))
    docs = (n + PER_DOC - 1) // PER_DOC
    per_doc = {key: rng.integers(0, size, docs) for key, size in KEYS.items()}
    qs = draw(queries)
    per_chunk = {key: np.repeat(values, PER_DOC)[:n] for key, values in per_doc.items()}
    return vectors, qs, per_chunk


def exact_filtered(vectors: np.ndarray, allowed: np.ndarray, qs: np.ndarray) -> list[list[int]]:
    rows = np.flatnonzero(allowed)
    scores = qs @ vectors[rows].T
    top = np.argsort(-scores, axis=1)[:, :K]
    return [[int(rows[j]) for j in line] for line in top]


def load(store: RagStore, vectors: np.ndarray, meta: dict[str, np.ndarray], batch_docs: int = 1000) -> float:
    started = time.perf_counter()
    n = len(vectors)
    for first_doc in range(0, (n + PER_DOC - 1) // PER_DOC, batch_docs):
        docs = []
        for d in range(first_doc, min(first_doc + batch_docs, (n + PER_DOC - 1) // PER_DOC)):
            lo, hi = d * PER_DOC, min(n, (d + 1) * PER_DOC)
            docs.append(
                {
                    "source_uri": f"bench:{d}",
                    "metadata": {key: int(values[lo]) for key, values in meta.items()},
                    "chunks": [{"text": f"chunk {i}", "vector": vectors[i].tolist()} for i in range(lo, hi)],
                }
            )
        store.documents.add("filtered", docs, wait=False)
    store.index.wait()
    with store.db.engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE")
    return time.perf_counter() - started


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def measure(
    search: Callable[[np.ndarray], list[int]], qs: np.ndarray, truth: list[list[int]] | None
) -> tuple[float, float, float | None]:
    for q in qs[:10]:
        search(q)
    times, found = [], 0
    gc.collect()
    for i, q in enumerate(qs):
        started = time.perf_counter()
        got = search(q)
        times.append((time.perf_counter() - started) * 1000)
        if truth is not None:
            found += len(set(got) & set(truth[i]))
    recall = found / (len(qs) * K) if truth is not None else None
    return pct(times, 0.5), pct(times, 0.99), recall


def interleaved(
    searches: list[Callable[[np.ndarray], list[int]]], qs: np.ndarray, truths: list[list[list[int]]]
) -> list[tuple[float, float, float]]:
    """p50, p99 and recall@10 of each search, asked in turn for every query: on a shared machine each one meets
    the same load, so their ratios hold however busy the cores are."""
    for search in searches:
        for q in qs[:10]:
            search(q)  # warm: the first search of a filter measures its share and lists what it keeps
    times: list[list[float]] = [[] for _ in searches]
    found = [0] * len(searches)
    gc.collect()
    for i, q in enumerate(qs):
        for j, search in enumerate(searches):
            started = time.perf_counter()
            got = search(q)
            times[j].append((time.perf_counter() - started) * 1000)
            found[j] += len(set(got) & set(truths[j][i]))
    return [(pct(t, 0.5), pct(t, 0.99), f / (len(qs) * K)) for t, f in zip(times, found, strict=True)]


def chroma_collection(vectors: np.ndarray, meta: dict[str, np.ndarray], folder: Path) -> Any:
    import chromadb

    client = chromadb.PersistentClient(path=str(folder))
    coll = client.create_collection("filtered", metadata={"hnsw:space": "cosine"}, embedding_function=None)
    for s in range(0, len(vectors), 2000):
        ids = [str(i) for i in range(s, min(s + 2000, len(vectors)))]
        coll.add(
            ids=ids,
            embeddings=vectors[s : s + 2000],
            metadatas=[{key: int(values[int(i)]) for key, values in meta.items()} for i in ids],
        )
    return coll


def chroma_where(spec: dict[str, Any]) -> dict[str, Any]:
    parts = [{key: value} for key, value in spec.items()]
    return parts[0] if len(parts) == 1 else {"$and": parts}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--keep", type=Path, default=None, help="SQLite: a data directory to load into or reuse")
    parser.add_argument("--no-chroma", action="store_true")
    args = parser.parse_args()

    vectors, qs, meta = dataset(args.chunks, args.queries)
    backend = "PostgreSQL" if args.database_url else "SQLite"
    libs = f"usearch {version('usearch')}" + ("" if args.no_chroma else f", chromadb {version('chromadb')}")
    console.print(
        f"{args.chunks:,} chunks, {args.queries} queries, {backend}; {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, {libs}"
    )
    if args.database_url:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from pgdb import scratch_database

        scope: Any = scratch_database(args.database_url, "ragstore_filtered")
    else:
        scope = nullcontext(None)
    tmp = Path(tempfile.mkdtemp(prefix="filtered-bench-"))
    try:
        with scope as url:
            data_dir = args.keep if args.keep is not None and url is None else tmp / "data"
            reuse = data_dir.exists()
            settings = Settings(
                data_dir=data_dir, database_url=url, lexical_analyzer="bigram", query_log=False, search_cache_ttl_s=0
            )
            with RagStore.open(settings, start_worker=True) as store:
                if not reuse:
                    store.collections.create("filtered", embedding_model="bench-vectors", dimension=DIM)
                    seconds = load(store, vectors, meta)
                    console.print(f"loaded in {seconds:.0f} s ({args.chunks / seconds:,.0f} chunks/s)")
                with store.db.engine.begin() as conn:  # planner statistics, the facet table's included
                    conn.exec_driver_sql("ANALYZE")
                with store.db.read() as s:
                    from sqlalchemy import text

                    first = int(s.execute(text("SELECT min(id) FROM document_chunks")).scalar_one())
                rows: list[tuple[str, float, float, float | None, float | None]] = []

                def searcher(spec: dict[str, Any] | None) -> Callable[[np.ndarray], list[int]]:
                    def run(q: np.ndarray) -> list[int]:
                        found = store.search("filtered", vector=q.tolist(), k=K, mode="dense", filter=spec)
                        return [h.chunk_id - first for h in found.hits]

                    return run

                specs: list[tuple[str, dict[str, Any] | None, np.ndarray]] = [
                    ("unfiltered", None, np.ones(len(vectors), dtype=bool))
                ] + [(label, spec, select(meta)) for label, spec, select in FILTERS]
                measured = interleaved(
                    [searcher(spec) for _, spec, _ in specs], qs, [exact_filtered(vectors, a, qs) for *_, a in specs]
                )
                chroma = None
                if not args.no_chroma:
                    started = time.perf_counter()
                    chroma = chroma_collection(vectors, meta, tmp / "chroma")
                    console.print(f"chroma loaded in {time.perf_counter() - started:.0f} s")
                for (label, spec, _), (p50, p99, recall) in zip(specs, measured, strict=True):
                    chroma_p50 = None
                    if chroma is not None and spec is not None:
                        where = chroma_where(spec)

                        def chroma_search(q: np.ndarray, where: dict[str, Any] = where) -> list[int]:
                            got = chroma.query(query_embeddings=[q], n_results=K, where=where)
                            return [int(i) for i in got["ids"][0]]

                        chroma_p50 = measure(chroma_search, qs[: max(20, len(qs) // 4)], None)[0]
                    rows.append((label, p50, p99, recall, chroma_p50))
                base_p50 = rows[0][1]
        table = Table(title=f"filtered dense search at {args.chunks:,} chunks ({backend}), ms")
        for col in ("filter", "p50", "p99", "recall@10", "p50 / unfiltered", "chroma p50", "chroma / ragstore"):
            table.add_column(col, justify="left" if col == "filter" else "right")
        for label, p50, p99, recall, chroma_p50 in rows:
            table.add_row(
                label,
                f"{p50:.3f}",
                f"{p99:.3f}",
                f"{recall:.4f}" if recall is not None else "",
                f"{p50 / base_p50:.2f}x",
                f"{chroma_p50:.2f}" if chroma_p50 is not None else "",
                f"{chroma_p50 / p50:.1f}x" if chroma_p50 is not None else "",
            )
        console.print(table)
        console.print(
            f"mean over the filters of p50 / unfiltered: {statistics.fmean(r[1] for r in rows[1:]) / base_p50:.2f}x"
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
