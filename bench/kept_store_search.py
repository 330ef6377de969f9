"""Dense search p50/p99 on a store another benchmark kept (its --data-dir, and its database for PostgreSQL).

    python bench/kept_store_search.py --data-dir DIR --database-url postgresql+psycopg://.../cons1m
    PYTHONPATH=<another checkout>/src python bench/kept_store_search.py ...   # the same store, other code

For a before-and-after of the search path at a size that takes an hour to load (bench/consistency.py
--data-dir keeps a million chunks): random unit queries of the collection's dimension, k 10, dense, the
result cache and the query log off; the first `--warm` searches are not timed.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np

import ragstore
from ragstore import RagStore
from ragstore.config import Settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--collection", default="consistency")
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--warm", type=int, default=100)
    args = parser.parse_args()
    settings = Settings(
        data_dir=args.data_dir,
        database_url=args.database_url,
        query_log=False,
        search_cache_ttl_s=0,
        lexical_analyzer="bigram",
    )
    with RagStore.open(settings, start_worker=False) as store:
        dimension = store.collections.get(args.collection).dimension
        rng = np.random.default_rng(11)
        queries = rng.normal(size=(args.warm + args.queries, dimension)).astype(np.float32)
        queries /= np.linalg.norm(queries, axis=1, keepdims=True)
        for q in queries[: args.warm]:
            store.search(args.collection, vector=q.tolist(), k=10, mode="dense")
        times = []
        for q in queries[args.warm :]:
            started = time.perf_counter()
            store.search(args.collection, vector=q.tolist(), k=10, mode="dense")
            times.append((time.perf_counter() - started) * 1000)
    times.sort()
    print(
        f"{ragstore.__file__}: dense k 10, {len(times)} searches: p50 {statistics.median(times):.3f} ms, "
        f"p99 {times[int(0.99 * (len(times) - 1))]:.3f} ms"
    )


if __name__ == "__main__":
    main()
