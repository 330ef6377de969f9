"""Ingest with precomputed vectors, split into its two halves: the SQL side alone, the index side alone,
and both together as a bulk load runs them (issue #22: why ingest stays under the raw insert rate).

    python bench/ingest_phases.py              # 20,000 vectors, twice
    python bench/ingest_phases.py --n 100000 --rounds 1
    python bench/ingest_phases.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/test

SQL side: `store.documents.add(wait=False)` with the sync worker stopped (validation, chunk rows, lexical
analysis, embeddings, the outbox). Index side: then `store.index.wait()` (usearch inserts and the outbox's
bookkeeping). Together: a store with its worker running, timed until everything is searchable. If the halves
overlapped perfectly, together would run at the slower half's rate; one after the other, at 1/(1/a + 1/b).
Prints a table; no assertion.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from core import DIM, dataset
from ragstore import RagStore
from ragstore.config import Settings
from ragstore.text.analyzers import shared_analyzer


def documents(data: np.ndarray, start: int, per_call: int) -> list[dict[str, Any]]:
    end = min(len(data), start + per_call)
    return [
        {"title": f"doc {i}", "chunks": [{"text": f"passage {i}", "vector": data[i].tolist()}]}
        for i in range(start, end)
    ]


def run(data: np.ndarray, per_call: int, *, worker: bool, server_url: str | None) -> tuple[float, float]:
    """(seconds storing, seconds until searchable after that), in a fresh store (and PostgreSQL database)."""
    folder = Path(tempfile.mkdtemp(prefix="ragstore-phases-"))
    scope: Any = nullcontext(None)
    if server_url:
        from pgdb import scratch_database

        scope = scratch_database(server_url, "ragstore_phases")
    try:
        with (
            scope as url,
            RagStore.open(
                Settings(data_dir=folder, database_url=url, index_persist_interval_s=3600), start_worker=worker
            ) as store,
        ):
            store.collections.create("bench", embedding_model="synthetic-384", dimension=DIM)
            started = time.perf_counter()
            for s in range(0, len(data), per_call):
                store.documents.add("bench", documents(data, s, per_call), wait=False)
            stored = time.perf_counter() - started
            started = time.perf_counter()
            store.index.wait()
            return stored, time.perf_counter() - started
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--per-call", type=int, default=1000, help="single-chunk documents per add call")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--database-url", help="a PostgreSQL server: each round in a scratch database on it")
    args = parser.parse_args()
    shared_analyzer("auto").terms("warm up 준비")  # the analyzer's model loads outside the timings
    data, _, _ = dataset(args.n, 10)
    backend = "PostgreSQL" if args.database_url else "SQLite"
    columns = ("round", "SQL side alone", "index side alone", "one after the other", "together")
    table = Table(*columns, title=f"vectors/s ({backend})")
    for r in range(args.rounds):
        sql_s, index_s = run(data, args.per_call, worker=False, server_url=args.database_url)
        stored_s, rest_s = run(data, args.per_call, worker=True, server_url=args.database_url)
        sql, index = args.n / sql_s, args.n / index_s
        table.add_row(
            str(r + 1),
            f"{sql:,.0f}",
            f"{index:,.0f}",
            f"{1 / (1 / sql + 1 / index):,.0f}",
            f"{args.n / (stored_s + rest_s):,.0f}",
        )
    Console().print(table)


if __name__ == "__main__":
    main()
