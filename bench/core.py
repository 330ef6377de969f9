"""Core benchmark: dense search and ingest through RagStore, beside the raw ANN library and Chroma.

    python bench/core.py            # 100,000 vectors, 500 queries, 400 texts
    python bench/core.py --quick    # 10,000 vectors, 200 queries, 60 texts (CI-sized)

Prints tables; no assertion. Targets (issue #2): search p50 <= 2x raw usearch, recall@10 >= 0.98, >= 3x
faster than Chroma; ingest with precomputed vectors >= 0.75x raw add rate and >= 5x Chroma; text ingest
>= 0.9x the default model's own encode rate.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from ragstore import RagStore
from ragstore.config import Settings
from ragstore.embeddings.local import DEFAULT_LOCAL_MODEL, LocalEmbedder

console = Console()
DIM = 384
K = 10


@dataclass
class Timing:
    name: str
    p50_ms: float
    p99_ms: float
    recall: float | None = None


def dataset(n: int, queries: int, seed: int = 7) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Clustered, L2-normalised vectors (like real embeddings, unlike uniform noise) and exact top-k."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(max(10, n // 100), DIM)).astype(np.float32)

    def draw(m: int) -> np.ndarray:
        v = centres[rng.integers(0, len(centres), m)] + 0.35 * rng.normal(size=(m, DIM)).astype(np.float32)
        return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)

    data, qs = draw(n), draw(queries)
    truth = np.empty((queries, K), dtype=np.int64)
    for start in range(0, queries, 100):
        scores = qs[start : start + 100] @ data.T
        truth[start : start + 100] = np.argsort(-scores, axis=1)[:, :K]
    return data, qs, truth


def timed_queries(fn: Callable[[np.ndarray], list[int]], qs: np.ndarray, truth: np.ndarray, name: str) -> Timing:
    for q in qs[:20]:
        fn(q)  # warm up
    times, hits = [], 0
    for q, true in zip(qs, truth, strict=True):
        started = time.perf_counter()
        found = fn(q)
        times.append((time.perf_counter() - started) * 1000)
        hits += len(set(found) & set(true.tolist()))
    return Timing(name, float(np.percentile(times, 50)), float(np.percentile(times, 99)), hits / (len(qs) * K))


def bench_raw_usearch(
    data: np.ndarray, qs: np.ndarray, truth: np.ndarray, ef: int, threads: int = 0
) -> tuple[float, Timing]:
    """`threads=0` is usearch's parallel insert (the raw limit); ragstore inserts with one thread, because
    the parallel insert strands vectors no search reaches (USearch #735, bench/index_threads.py)."""
    from usearch.index import Index

    defaults = Settings()  # the raw library gets exactly the parameters ragstore uses
    index = Index(
        ndim=DIM,
        metric="cos",
        dtype=defaults.index_dtype,
        connectivity=defaults.hnsw_connectivity,
        expansion_add=defaults.hnsw_expansion_add,
        expansion_search=ef,
    )
    keys = np.arange(len(data), dtype=np.uint64)
    started = time.perf_counter()
    for s in range(0, len(data), 1000):
        index.add(keys[s : s + 1000], data[s : s + 1000], threads=threads)
    rate = len(data) / (time.perf_counter() - started)
    timing = timed_queries(lambda q: [int(k) for k in index.search(q, K).keys], qs, truth, f"raw usearch (ef={ef})")
    return rate, timing


def bench_ragstore(
    data: np.ndarray, qs: np.ndarray, truth: np.ndarray, ef: int, docs_per_call: int, chunks_per_doc: int
) -> tuple[float, Timing]:
    tmp = Path(tempfile.mkdtemp(prefix="ragstore-bench-"))
    try:
        settings = Settings(data_dir=tmp, hnsw_expansion_search=ef, index_persist_interval_s=3600)
        with RagStore.open(settings, start_worker=True) as store:
            store.collections.create("bench", embedding_model="synthetic-384", dimension=DIM)
            per_call = docs_per_call * chunks_per_doc
            started = time.perf_counter()
            for s in range(0, len(data), per_call):
                block = data[s : s + per_call]
                docs = [
                    {
                        "title": f"doc {s + d * chunks_per_doc}",
                        "chunks": [
                            {
                                "text": f"passage {s + d * chunks_per_doc + c}",
                                "vector": block[d * chunks_per_doc + c].tolist(),
                            }
                            for c in range(min(chunks_per_doc, len(block) - d * chunks_per_doc))
                        ],
                    }
                    for d in range((len(block) + chunks_per_doc - 1) // chunks_per_doc)
                ]
                # The worker indexes batch N while this thread stores batch N+1; the clock stops when all of
                # it is searchable.
                store.documents.add("bench", docs, wait=False)
            store.index.wait()
            rate = len(data) / (time.perf_counter() - started)
            # chunk id -> dataset row, read back from SQL (texts carry the row number)
            from sqlalchemy import select

            from ragstore.db.models import DocumentChunk

            with store.db.read() as s:
                row_of = {
                    cid: int(text.split()[1]) for cid, text in s.execute(select(DocumentChunk.id, DocumentChunk.text))
                }

            def search(q: np.ndarray) -> list[int]:
                return [row_of[h.chunk_id] for h in store.search("bench", vector=q, k=K).hits]

            timing = timed_queries(search, qs, truth, f"ragstore (ef={ef})")
        return rate, timing
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def bench_chroma(data: np.ndarray, qs: np.ndarray, truth: np.ndarray) -> tuple[float, Timing] | None:
    try:
        import chromadb
    except ImportError:
        console.print("[yellow]chromadb not installed: pip install -e '.[bench]'[/]")
        return None
    tmp = tempfile.mkdtemp(prefix="chroma-bench-")
    try:
        client = chromadb.PersistentClient(path=tmp)
        coll = client.create_collection("bench", metadata={"hnsw:space": "cosine"}, embedding_function=None)
        started = time.perf_counter()
        for s in range(0, len(data), 1000):
            ids = [str(i) for i in range(s, min(s + 1000, len(data)))]
            coll.add(ids=ids, embeddings=data[s : s + 1000], documents=[f"passage {i}" for i in ids])
        rate = len(data) / (time.perf_counter() - started)

        def search(q: np.ndarray) -> list[int]:
            return [int(i) for i in coll.query(query_embeddings=[q], n_results=K)["ids"][0]]

        return rate, timed_queries(search, qs, truth, "chroma")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


KO = [
    "서울 지하철은 {n}분 안에 갈아타면 환승 할인이 적용된다.",
    "전세 계약 전에는 등기부등본으로 {n}건의 근저당을 확인해야 한다.",
    "김치는 배추를 {n}시간 절인 뒤 고춧가루 양념에 버무려 만든다.",
    "연말정산에서 신용카드 사용액은 총급여의 {n}퍼센트를 넘어야 공제된다.",
    "제주도 한라산 등반은 왕복 {n}시간 정도 걸리며 예약이 필요하다.",
]
EN = [
    "The business plan allows {n} API requests per minute with short bursts.",
    "Refunds reach the original card within {n} business days after approval.",
    "Back up the database nightly and keep {n} daily copies for a week.",
    "Brew pour-over coffee with water at {n} degrees for a balanced cup.",
    "A first marathon needs about {n} weeks of gradual training.",
]


def texts(n: int) -> list[str]:
    pool = KO + EN
    return [pool[i % len(pool)].format(n=i) for i in range(n)]


def bench_text(n: int, rounds: int = 3) -> tuple[float, float, int]:
    """Median texts/s of the model alone and of ragstore's ingest, alternated so that drift in the machine's
    speed (OpenMP threads, CPU frequency) hits both alike."""
    corpus = texts(n)
    embedder = LocalEmbedder(engine=Settings().embedding_engine)  # RAGSTORE_EMBEDDING_ENGINE's, validated
    embedder.embed(["warm up", "준비 운동"], kind="document")
    model_rates, store_rates, chunks = [], [], 0
    for _ in range(rounds):
        started = time.perf_counter()
        embedder.embed(corpus, kind="document")
        model_rates.append(n / (time.perf_counter() - started))
        tmp = Path(tempfile.mkdtemp(prefix="ragstore-text-"))
        try:
            with RagStore.open(Settings(data_dir=tmp), embedder=embedder) as store:  # fresh: nothing cached
                store.collections.create("text")
                started = time.perf_counter()
                for s in range(0, n, 100):
                    store.documents.add("text", [{"text": t} for t in corpus[s : s + 100]])
                store_rates.append(n / (time.perf_counter() - started))
                chunks = store.collections.get("text").chunk_count
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return float(np.median(model_rates)), float(np.median(store_rates)), chunks


def machine() -> str:
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    libs = ", ".join(f"{p} {version(p)}" for p in ("usearch", "numpy", "sqlalchemy") if _has(p))
    chroma = f", chromadb {version('chromadb')}" if _has("chromadb") else ""
    return f"{os.cpu_count()} cores, {mem:.0f} GiB, Python {platform.python_version()}, {libs}{chroma}"


def _has(dist: str) -> bool:
    try:
        version(dist)
        return True
    except Exception:
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="CI-sized run")
    parser.add_argument("--n", type=int, help="vectors (default 100,000; quick 10,000)")
    parser.add_argument("--queries", type=int, help="queries (default 500; quick 200)")
    parser.add_argument("--texts", type=int, help="texts for the model ingest (default 400; quick 60)")
    parser.add_argument("--ef", type=int, nargs="+", default=[64, 128], help="HNSW ef_search values to try")
    args = parser.parse_args()
    n = args.n or (10_000 if args.quick else 100_000)
    nq = args.queries or (200 if args.quick else 500)
    nt = args.texts or (60 if args.quick else 400)

    console.print(f"[bold]ragstore core benchmark[/]  {n:,} x {DIM}-d clustered vectors, {nq} queries, k={K}")
    console.print(f"machine: {machine()}")
    data, qs, truth = dataset(n, nq)

    search_rows: list[Timing] = []
    ingest: dict[str, float] = {}
    for ef in args.ef:
        raw_rate, raw_t = bench_raw_usearch(data, qs, truth, ef)
        ingest.setdefault("raw usearch add (batches of 1,000)", raw_rate)
        search_rows.append(raw_t)
        gc.collect()
        if ef == args.ef[0]:
            one_thread, _ = bench_raw_usearch(data, qs[:20], truth[:20], ef, threads=1)
            ingest["raw usearch add, one thread (as ragstore inserts)"] = one_thread
            gc.collect()
            rate_a, rs_t = bench_ragstore(data, qs, truth, ef, docs_per_call=1000, chunks_per_doc=1)
            ingest["ragstore add_documents (1,000 docs x 1 chunk per call)"] = rate_a
            rate_b, _ = bench_ragstore(data[: n // 2], qs[:20], truth[:20], ef, docs_per_call=100, chunks_per_doc=10)
            ingest["ragstore add_documents (100 docs x 10 chunks per call)"] = rate_b
        else:
            _, rs_t = bench_ragstore(data, qs, truth, ef, docs_per_call=1000, chunks_per_doc=1)
        search_rows.append(rs_t)
        gc.collect()
    chroma = bench_chroma(data, qs, truth)
    if chroma is not None:
        ingest["chroma add (batches of 1,000)"] = chroma[0]
        search_rows.append(chroma[1])

    table = Table(title="dense search, single query")
    for col in ("system", "p50 ms", "p99 ms", "recall@10"):
        table.add_column(col, justify="right" if col != "system" else "left")
    for t in search_rows:
        table.add_row(t.name, f"{t.p50_ms:.3f}", f"{t.p99_ms:.3f}", f"{t.recall:.4f}" if t.recall is not None else "")
    console.print(table)

    table = Table(title="ingest with precomputed vectors")
    table.add_column("system")
    table.add_column("vectors/s", justify="right")
    for name, rate in ingest.items():
        table.add_row(name, f"{rate:,.0f}")
    console.print(table)

    model_rate, store_rate, chunks = bench_text(nt)
    table = Table(title=f"text ingest with the default local model ({DEFAULT_LOCAL_MODEL}), {nt} texts, median of 3")
    table.add_column("system")
    table.add_column("texts/s", justify="right")
    table.add_row("model encode alone", f"{model_rate:.1f}")
    table.add_row(f"ragstore add_documents ({chunks} chunks stored and indexed)", f"{store_rate:.1f}")
    console.print(table)

    by_name = {t.name: t for t in search_rows}
    ef0 = args.ef[0]
    raw, rs = by_name[f"raw usearch (ef={ef0})"], by_name[f"ragstore (ef={ef0})"]
    summary = Table(title="summary against the targets")
    for col in ("metric", "ragstore", "reference", "ratio", "target", "met"):
        summary.add_column(col)

    def row(metric: str, ours: float, ref: float, ratio: float, target: str, met: bool, fmt: str = "{:,.2f}") -> None:
        summary.add_row(metric, fmt.format(ours), fmt.format(ref), f"{ratio:.2f}x", target, "yes" if met else "NO")

    row(
        f"search p50 ms vs raw (ef={ef0})",
        rs.p50_ms,
        raw.p50_ms,
        rs.p50_ms / raw.p50_ms,
        "<= 2x",
        rs.p50_ms <= 2 * raw.p50_ms,
        "{:.3f}",
    )
    best = max((t for t in search_rows if t.name.startswith("ragstore")), key=lambda t: t.recall or 0)
    summary.add_row(
        f"recall@10 ({best.name})",
        f"{best.recall:.4f}",
        "",
        "",
        ">= 0.98",
        "yes" if (best.recall or 0) >= 0.98 else "NO",
    )
    raw_rate = ingest["raw usearch add (batches of 1,000)"]
    our_rate = max(v for k, v in ingest.items() if k.startswith("ragstore"))
    row(
        "ingest vectors/s vs raw add",
        our_rate,
        raw_rate,
        our_rate / raw_rate,
        ">= 0.75x",
        our_rate >= 0.75 * raw_rate,
        "{:,.0f}",
    )
    one_thread = ingest["raw usearch add, one thread (as ragstore inserts)"]
    summary.add_row(
        "ingest vectors/s vs raw add, one thread",
        f"{our_rate:,.0f}",
        f"{one_thread:,.0f}",
        f"{our_rate / one_thread:.2f}x",
        "(reference)",
        "-",
    )
    if chroma is not None:
        ch = chroma[1]
        row(
            "search p50 ms vs chroma",
            rs.p50_ms,
            ch.p50_ms,
            ch.p50_ms / rs.p50_ms,
            ">= 3x faster",
            ch.p50_ms >= 3 * rs.p50_ms,
            "{:.3f}",
        )
        row(
            "ingest vectors/s vs chroma",
            our_rate,
            chroma[0],
            our_rate / chroma[0],
            ">= 5x",
            our_rate >= 5 * chroma[0],
            "{:,.0f}",
        )
    row(
        "text ingest texts/s vs model",
        store_rate,
        model_rate,
        store_rate / model_rate,
        ">= 0.9x",
        store_rate >= 0.9 * model_rate,
        "{:.1f}",
    )
    console.print(summary)


if __name__ == "__main__":
    main()
