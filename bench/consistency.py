"""The consistency checker at scale: a clean check, a check that finds injected drift, and its repair.

    python bench/consistency.py                                    # 1,000,000 chunks, embedded index, SQLite
    python bench/consistency.py --data-dir /tmp/cc-1m              # keep the store: a rerun skips the load
    python bench/consistency.py --chunks 100000 --backend milvus   # Milvus Lite
    python bench/consistency.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/test
    python bench/consistency.py --chunks 100000 --profile          # cProfile of the clean check too

The corpus is synthetic: 5 chunks per document, every text unique (so every content hash differs), random
L2-normalised float32 vectors given with the chunks, so no embedding model is loaded. After a clean check
(0 problems expected) the index is damaged directly, behind SQL's back: 100 vectors deleted (missing), 100
vectors of ids SQL never had (orphans) and 100 vectors overwritten with other ones (stale); a check must
find exactly those, and `check_consistency(repair=True)` must leave nothing. The phases of the clean check
are timed by calling the checker's own methods one by one. Target: a clean check of 1,000,000 chunks in
<= 30 s. Prints tables; asserts only the drift counts.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import platform
import pstats
import resource
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from rich.console import Console
from rich.table import Table
from sqlalchemy import func, select

from ragstore import RagStore
from ragstore.config import Settings
from ragstore.consistency.checker import ConsistencyChecker
from ragstore.db.chunk_vectors import iter_indexed_vectors
from ragstore.db.models import ChunkStatus, Collection, Document, DocumentChunk
from ragstore.embeddings.base import Embedder
from ragstore.schemas import ChunkInput, ConsistencyReport, DocumentInput, RepairReport

console = Console(width=None if sys.stdout.isatty() else 150)
COLLECTION = "consistency"
MODEL = "bench-vectors"
TARGET_S = 30.0
T = TypeVar("T")


class NoEmbedder:
    """Every vector is given; a call to embed would be a bug in the benchmark."""

    backend = "none"
    model = MODEL

    def __init__(self, dimension: int) -> None:
        self.dimension = dimension

    def embed(self, texts: Any, *, kind: Any) -> Any:
        raise AssertionError("the benchmark gives every vector")


# -- memory ----------------------------------------------------------------------------------------------
def peak_rss_mib() -> float:
    """The process's peak resident set since it started (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reset_window_peak() -> bool:
    """Reset the kernel's high-water mark (VmHWM), so the next reading covers only what follows."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def window_peak_mib() -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


# -- the corpus ------------------------------------------------------------------------------------------
def random_unit(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    v = rng.standard_normal(size=(n, dim), dtype=np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return v


def document_batches(
    chunks: int, dim: int, per_doc: int, batch_docs: int, seed: int
) -> Iterator[tuple[int, list[DocumentInput]]]:
    """(chunks in the batch, documents), generated batch by batch: 1M x 384 floats never sit in memory at once.

    Vectors stay numpy rows (ChunkInput takes an ndarray as it is), so nothing converts 384 floats to a list
    and validates them one by one.
    """
    rng = np.random.default_rng(seed)
    per_batch = per_doc * batch_docs
    for start in range(0, chunks, per_batch):
        n = min(per_batch, chunks - start)
        vectors = random_unit(rng, n, dim)
        docs = []
        for d in range(0, n, per_doc):
            number = (start + d) // per_doc
            docs.append(
                DocumentInput(
                    title=f"document {number}",
                    source_uri=f"bench:{number}",
                    chunks=[
                        ChunkInput(
                            text=f"Chunk {start + i} of document {number}: synthetic text for the consistency check.",
                            vector=vectors[i],
                        )
                        for i in range(d, min(d + per_doc, n))
                    ],
                )
            )
        yield n, docs


def load(store: RagStore, args: argparse.Namespace) -> float:
    started = time.perf_counter()
    done, last_report = 0, started
    for n, docs in document_batches(args.chunks, args.dim, args.per_doc, args.batch_docs, args.seed):
        # The worker indexes batch N while this thread stores batch N+1.
        store.documents.add(COLLECTION, docs, wait=False)
        done += n
        if time.perf_counter() - last_report > 30:
            last_report = time.perf_counter()
            rate = done / (last_report - started)
            console.print(f"  stored {done:,} chunks ({rate:,.0f}/s), index has {index_count(store):,}")
    store.index.wait(timeout_s=24 * 3600)
    seconds = time.perf_counter() - started
    # Planner statistics, as after any bulk load (SQLite never gathers them by itself).
    with store.db.engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE")
    store.index.persist()
    return seconds


def collection_id(store: RagStore) -> int:
    return int(store.components.catalog.resolve(COLLECTION).id)


def index_count(store: RagStore) -> int:
    return store.components.vectors.count(collection_id(store))


def sql_counts(store: RagStore) -> tuple[int, int]:
    """(chunks SQL holds as indexed, all chunk rows) of the benchmark collection."""
    cid = collection_id(store)
    with store.db.read() as s:
        indexed = s.scalar(
            select(func.count())
            .select_from(DocumentChunk)
            .where(DocumentChunk.collection_id == cid, DocumentChunk.status == ChunkStatus.INDEXED)
        )
        rows = s.scalar(select(func.count()).select_from(DocumentChunk).where(DocumentChunk.collection_id == cid))
    return int(indexed or 0), int(rows or 0)


def prepare(store: RagStore, args: argparse.Namespace) -> tuple[float | None, str]:
    """Load the corpus unless the store already holds it; (load seconds or None when reused, what happened)."""
    names = {c.name for c in store.collections.list()}
    if COLLECTION in names:
        info = store.collections.get(COLLECTION)
        indexed, rows = sql_counts(store)
        in_index = index_count(store)
        if info.dimension == args.dim and indexed == rows == in_index == args.chunks:
            return None, f"reused: {rows:,} chunks in SQL and in the index"
        console.print(
            f"[yellow]the store holds {rows:,} chunks ({indexed:,} indexed, {in_index:,} in the index, "
            f"dimension {info.dimension}), not {args.chunks:,}: loading again[/]"
        )
        store.collections.delete(COLLECTION)
        store.index.wait()
    store.collections.create(COLLECTION, embedding_model=MODEL, dimension=args.dim)
    seconds = load(store, args)
    return seconds, f"loaded in {seconds:,.0f} s ({args.chunks / seconds:,.0f} chunks/s)"


# -- the phases of one check -----------------------------------------------------------------------------
class TimedIndex:
    """The store's index, with the time spent in its reads added up by method (the checker gets this one)."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}

    def _timed(self, name: str, fn: Callable[[], T]) -> T:
        started = time.perf_counter()
        try:
            return fn()
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - started
            self.calls[name] = self.calls.get(name, 0) + 1

    def get(self, collection_id: int, ids: Any) -> Any:
        return self._timed("index.get", lambda: self._inner.get(collection_id, ids))

    def iter_ids(self, collection_id: int, batch_size: int = 10_000) -> Iterator[Any]:
        it = iter(self._timed("index.iter_ids", lambda: self._inner.iter_ids(collection_id, batch_size)))
        while True:
            try:
                batch = self._timed("index.iter_ids", lambda: next(it))
            except StopIteration:
                return
            yield batch

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


@contextmanager
def clock(phases: list[tuple[str, float]], name: str) -> Iterator[None]:
    started = time.perf_counter()
    yield
    phases.append((name, time.perf_counter() - started))


def phase_breakdown(store: RagStore) -> tuple[list[tuple[str, float]], TimedIndex]:
    """One clean check of the collection, step by step, in the order ConsistencyChecker.check runs them.

    The SQL reads between `_index_ids` and the set differences are inline in `_check_collection`; they are
    repeated here as written there. The SQL side of `_compare_vectors` is timed by a second, separate pass
    over `iter_indexed_vectors` alone.
    """
    timed = TimedIndex(store.components.vectors)
    checker = ConsistencyChecker(store.db, timed, stuck_after_s=store.settings.check_stuck_after_s)  # type: ignore[arg-type]
    ref = store.collections.get(COLLECTION)
    cid = collection_id(store)
    phases: list[tuple[str, float]] = []
    with clock(phases, "index.dimension"):
        checker.index.dimension(cid)
    with clock(phases, "_index_ids (index.iter_ids, sorted)"):
        in_index = checker._index_ids(cid)
    with clock(phases, "SQL: all chunk ids, indexed chunk ids, document count"), store.db.read() as s:
        all_rows = np.fromiter(
            s.scalars(select(DocumentChunk.id).where(DocumentChunk.collection_id == cid)), dtype=np.int64
        )
        indexed = np.fromiter(
            s.scalars(
                select(DocumentChunk.id).where(
                    DocumentChunk.collection_id == cid, DocumentChunk.status == ChunkStatus.INDEXED
                )
            ),
            dtype=np.int64,
        )
        s.scalar(select(func.count()).where(Document.collection_id == cid))
    with clock(phases, "np.setdiff1d x 2"):
        orphans = np.setdiff1d(in_index, all_rows, assume_unique=True)
        missing = np.setdiff1d(indexed, in_index, assume_unique=True)
    with clock(phases, "_confirm_orphans"):
        checker._confirm_orphans(cid, orphans)
    with clock(phases, "_confirm_missing"):
        checker._confirm_missing(cid, missing)
    get_before = timed.seconds.get("index.get", 0.0)
    with clock(phases, "_compare_vectors (total)"):
        checker._compare_vectors(cid, ref.embedding_model, ref.dimension, missing)
    compare_get = timed.seconds.get("index.get", 0.0) - get_before
    with clock(phases, "_count_drift"):
        checker._count_drift(cid, COLLECTION)
    with clock(phases, "_duplicates"):
        checker._duplicates(cid, COLLECTION)
    with store.db.read() as s:
        known = set(s.scalars(select(Collection.id)))
    with clock(phases, "_orphan_collections"):
        checker._orphan_collections(known)
    with clock(phases, "_stuck_operations"):
        checker._stuck_operations({cid: COLLECTION}, only=False)
    # Inside _compare_vectors: how much is the index, how much SQL (measured alone), the rest is numpy/Python.
    started = time.perf_counter()
    for _ in iter_indexed_vectors(store.db, cid, ref.embedding_model, ref.dimension, batch_size=checker.batch):
        pass
    compare_sql = time.perf_counter() - started
    compare_total = dict(phases)["_compare_vectors (total)"]
    phases.append(("  of which index.get", compare_get))
    phases.append(("  of which SQL: iter_indexed_vectors (timed alone)", compare_sql))
    phases.append(("  of which the rest (numpy, sets, lists)", max(0.0, compare_total - compare_get - compare_sql)))
    return phases, timed


def profile_check(store: RagStore, top: int) -> str:
    profiler = cProfile.Profile()
    profiler.enable()
    store.components.checker.check(COLLECTION)
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("cumulative").print_stats(top)
    stats.sort_stats("tottime").print_stats(top)
    return out.getvalue()


# -- drift -----------------------------------------------------------------------------------------------
def inject_drift(store: RagStore, per_kind: int, dim: int, seed: int) -> dict[str, list[int]]:
    """Damage the index directly (not through the outbox): deleted, orphan and overwritten vectors."""
    cid = collection_id(store)
    with store.db.read() as s:
        ids = np.fromiter(
            s.scalars(
                select(DocumentChunk.id).where(
                    DocumentChunk.collection_id == cid, DocumentChunk.status == ChunkStatus.INDEXED
                )
            ),
            dtype=np.int64,
        )
        highest = int(s.scalar(select(func.max(DocumentChunk.id))) or 0)
    rng = np.random.default_rng(seed + 1)
    picked = rng.choice(ids, size=2 * per_kind, replace=False)
    deleted, overwritten = np.sort(picked[:per_kind]), np.sort(picked[per_kind:])
    # Far above every id SQL has handed out (ids are never reused), so they stay orphans.
    orphans = np.arange(highest + 10_000_000, highest + 10_000_000 + per_kind, dtype=np.int64)
    store.components.vectors.delete(cid, deleted)
    store.components.vectors.upsert(cid, orphans, random_unit(rng, per_kind, dim))
    store.components.vectors.upsert(cid, overwritten, random_unit(rng, per_kind, dim))
    return {
        "missing_vectors": deleted.tolist(),
        "orphan_vectors": orphans.tolist(),
        "stale_vectors": overwritten.tolist(),
    }


def finding_ids(report: ConsistencyReport, kind: str) -> set[int]:
    """The sample ids of a kind's findings (a finding lists up to 20; the count is exact)."""
    return {int(i) for f in report.findings or [] if f.kind == kind for i in f.ids}


# -- main ------------------------------------------------------------------------------------------------
def fmt_s(seconds: float | None) -> str:
    return "" if seconds is None else f"{seconds:,.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chunks", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--backend", choices=("embedded", "milvus"), default="embedded")
    parser.add_argument(
        "--database-url",
        default=None,
        help="a PostgreSQL server: a scratch database is made and dropped (with --data-dir, the URL is used as is)",
    )
    parser.add_argument("--data-dir", type=Path, default=None, help="keep the store here; a rerun reuses it")
    parser.add_argument("--per-doc", type=int, default=5, help="chunks per document")
    parser.add_argument("--batch-docs", type=int, default=500, help="documents per add_documents call")
    parser.add_argument("--drift", type=int, default=100, help="vectors damaged per kind")
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=3, help="clean checks timed (the median is reported)")
    parser.add_argument("--no-phases", action="store_true", help="skip the step-by-step timing")
    parser.add_argument("--profile", action="store_true", help="also print a cProfile of one clean check")
    parser.add_argument("--profile-top", type=int, default=30)
    args = parser.parse_args()

    database = "PostgreSQL" if args.database_url else "SQLite"
    console.print(
        f"[bold]consistency checker[/]: {args.chunks:,} chunks x {args.dim}-d, {args.backend} index, {database}; "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    with ExitStack() as stack:
        if args.data_dir is not None:
            data_dir = args.data_dir
            data_dir.mkdir(parents=True, exist_ok=True)
            url = args.database_url
        else:
            data_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ragstore-consistency-")))
            url = None
            if args.database_url:
                sys.path.insert(0, str(Path(__file__).resolve().parent))
                from pgdb import scratch_database

                url = stack.enter_context(scratch_database(args.database_url, "ragstore_consistency"))
        settings = Settings(
            data_dir=data_dir,
            database_url=url,
            vector_backend=args.backend,
            # Bigrams: the lexical terms of a million chunks in seconds, not the ~14 minutes of kiwi.
            lexical_analyzer="bigram",
            query_log=False,
            index_persist_interval_s=3600,  # no periodic save of a growing 1M-vector graph during the load
        )
        embedder: Embedder = NoEmbedder(args.dim)  # type: ignore[assignment]
        opened = time.perf_counter()
        store = stack.enter_context(RagStore.open(settings, embedder=embedder, start_worker=True))
        open_s = time.perf_counter() - opened
        load_s, how = prepare(store, args)
        console.print(f"store opened in {open_s:.1f} s; {how}; peak RSS so far {peak_rss_mib():,.0f} MiB")

        # 1. a clean check (repeated: the median is what the target is judged on)
        console.print(f"load average before the checks: {load_average()}")
        started = time.perf_counter()
        first = store.consistency.check()
        first_s = time.perf_counter() - started
        assert first is not None
        console.print(f"first check after opening: {first_s:.2f} s, {first.problems} problems (not in the median)")
        if first.problems:
            console.print(f"[yellow]the store was not clean ({first.counts}): repairing, then checking again[/]")
            store.consistency.check(repair=True)
        window = reset_window_peak()
        clean_runs: list[float] = []
        for _ in range(max(1, args.repeat)):
            started = time.perf_counter()
            clean = store.consistency.check()
            clean_runs.append(time.perf_counter() - started)
            assert clean is not None
            assert clean.problems == 0, clean.counts
            console.print(
                f"clean check: {clean_runs[-1]:.2f} s wall, {(clean.duration_ms or 0) / 1000:.2f} s reported, "
                f"{clean.problems} problems, collections {clean.collections}; load average {load_average()}"
            )
        check_peak = window_peak_mib() if window else None
        clean_s = float(np.median(clean_runs))

        phases: list[tuple[str, float]] = []
        timed: TimedIndex | None = None
        if not args.no_phases:
            phases, timed = phase_breakdown(store)
        profile = profile_check(store, args.profile_top) if args.profile else ""

        # 2. drift: found exactly, then repaired
        injected = inject_drift(store, args.drift, args.dim, args.seed)
        started = time.perf_counter()
        drifted = store.consistency.check()
        drift_s = time.perf_counter() - started
        assert drifted is not None
        expected = {kind: 0 for kind in drifted.counts} | {k: len(v) for k, v in injected.items()}
        assert drifted.counts == expected, f"found {drifted.counts}, injected {expected}"
        for kind, ids in injected.items():
            sample = finding_ids(drifted, kind)
            assert sample <= set(ids), f"{kind}: reported ids {sorted(sample - set(ids))[:5]} were not injected"
        started = time.perf_counter()
        repaired = store.consistency.check(repair=True)
        repair_s = time.perf_counter() - started
        assert repaired is not None
        remaining = sum((repaired.remaining or {}).values())
        assert remaining == 0, repaired.remaining
        after_in_index = index_count(store)
        indexed, _ = sql_counts(store)
        assert after_in_index == indexed == args.chunks, (after_in_index, indexed)
        store.index.persist()

        # 3. tables
        met = clean_s <= TARGET_S
        table = Table(title=f"consistency checker at {args.chunks:,} chunks")
        for col in (
            "chunks",
            "backend",
            "database",
            "load s",
            f"clean check s (median of {len(clean_runs)})",
            "drift check s",
            "repair s",
            "peak RSS MiB",
            "check peak MiB",
            f"clean <= {TARGET_S:.0f} s",
        ):
            table.add_column(col, justify="right")
        table.add_row(
            f"{args.chunks:,}",
            args.backend if args.backend == "embedded" else "milvus (Lite)" if "://" not in url_of(store) else "milvus",
            database,
            fmt_s(load_s) if load_s is not None else "reused",
            fmt_s(clean_s) + (f" (best {min(clean_runs):.2f})" if len(clean_runs) > 1 else ""),
            fmt_s(drift_s),
            fmt_s(repair_s),
            f"{peak_rss_mib():,.0f}",
            f"{check_peak:,.0f}" if check_peak is not None else "",
            "[green]yes[/]" if met else "[red]NO[/]",
        )
        console.print(table)
        drift = Table(title="injected drift: found and repaired")
        for col in ("kind", "injected", "found", "remaining after repair"):
            drift.add_column(col, justify="left" if col == "kind" else "right")
        for kind, ids in injected.items():
            drift.add_row(kind, str(len(ids)), str(drifted.counts[kind]), str((repaired.remaining or {})[kind]))
        console.print(drift)
        repairs = repaired.repairs or RepairReport()
        console.print(
            f"repair: {repairs.queued_operations} queued, {repairs.applied} applied, "
            f"{repairs.failed} failed; report duration {(repaired.duration_ms or 0) / 1000:.2f} s "
            "(check + repair + check again)"
        )
        if phases:
            total = sum(s for name, s in phases if not name.startswith("  "))
            steps = Table(title="clean check, step by step (ConsistencyChecker methods called one by one)")
            for col in ("step", "s", "share"):
                steps.add_column(col, justify="left" if col == "step" else "right")
            for name, seconds in phases:
                steps.add_row(name, f"{seconds:.3f}", f"{seconds / total:.0%}" if total else "")
            steps.add_row("[bold]sum of the steps[/]", f"{total:.3f}", "")
            console.print(steps)
            if timed is not None:
                calls = ", ".join(f"{k} {timed.calls[k]} calls {v:.2f} s" for k, v in timed.seconds.items())
                console.print(f"index reads during the steps: {calls}")
        if profile:
            console.print("[bold]cProfile of one clean check[/]")
            print(profile)


def load_average() -> str:
    """The machine's 1-minute load average against its cores: another busy process slows every figure here."""
    return f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"


def url_of(store: RagStore) -> str:
    return store.settings.milvus_location if store.settings.vector_backend == "milvus" else ""


if __name__ == "__main__":
    main()
