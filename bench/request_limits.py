"""What the request limits cost the cached search path: this tree against another revision, in one run.

    python bench/request_limits.py                       # against main, 3 rounds of 10 s, 50 clients
    python bench/request_limits.py --baseline 2b8ae16 --rounds 5 --duration 10

Both servers run side by side (`bench/load.py`'s `server`, SQLite, the sample corpus), each importing its
own source tree through PYTHONPATH; the baseline's `src` is exported from git with `git archive`. The
rounds alternate between them (and which goes first alternates too), so a machine that slows down during
the run slows both alike. Each round is `bench/load.py`'s `repeated` mix: one of the 60 sample questions again
and again, answered from the result cache. Prints req/s and p95 per round and the ratio of the medians;
asserts nothing. First, the same cost without the network: this tree's app called in process, with and
without the request guard (on a shared machine the load generator's noise can hide a few microseconds).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from asgi_scope import search_scope
from load import ROOT, drive, server, warm_up

console = Console()


def exported_src(revision: str, into: Path) -> Path:
    """The `src` folder of `revision`, from git (no checkout: the working tree is left alone)."""
    archive = into / "src.tar"
    with archive.open("wb") as out:
        subprocess.run(["git", "-C", str(ROOT), "archive", revision, "src"], stdout=out, check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")
    return into / "src"


def in_process(rounds: int, calls: int) -> None:
    """Server CPU per cached search, without the network or a load generator: the app called directly.

    The same tree twice, with and without the request guard (its middleware left out of the stack), so the
    difference is what the limits cost a cached search and nothing else.
    """
    sys.path.insert(0, str(ROOT / "src"))  # this tree, whatever the environment installed
    from ragstore import RagStore
    from ragstore.api.app import create_app
    from ragstore.api.limits import RequestGuardMiddleware
    from ragstore.config import Settings

    body = json.dumps({"query": "전세 계약 갱신", "k": 5}).encode()
    scope_base = search_scope(body, [(b"accept-encoding", b"gzip, deflate")])

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    statuses: list[int] = []

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    async def timed(app: Any) -> float:
        # CPU time of this thread (the event loop's, where a cached search runs): what other processes on a
        # shared machine take from it does not count, as it would in wall-clock time.
        started = time.thread_time()
        for _ in range(calls):
            await app(dict(scope_base), receive, send)
        return (time.thread_time() - started) / calls * 1e6

    with tempfile.TemporaryDirectory(prefix="ragstore-limits-") as tmp:
        settings = Settings(data_dir=Path(tmp) / "data", query_log=False, auth="off")  # keys: bench/auth_cost.py
        with RagStore.open(settings) as store:
            store.collections.create("kb")
            store.documents.add_text("kb", "전세 계약을 갱신할 때 확인할 사항을 정리합니다.", title="전세")
            store.documents.add_text("kb", "A verified backup restores the store and its vectors.", title="backup")
            apps = {"with the guard": create_app(store=store), "without": create_app(store=store)}
            apps["without"].user_middleware = [
                m for m in apps["without"].user_middleware if m.cls is not RequestGuardMiddleware
            ]
            for app in apps.values():
                app.state.store = store
            store.search("kb", "전세 계약 갱신", k=5)  # the result cache holds it from now on
            costs: dict[str, list[float]] = {name: [] for name in apps}
            for _ in range(rounds):
                for name, app in apps.items():
                    costs[name].append(asyncio.run(timed(app)))
            assert set(statuses) == {200}, set(statuses)
    table = Table(title=f"in process: CPU µs per cached search, {rounds} rounds of {calls:,} calls")
    for col in ("stack", "µs", "best µs"):
        table.add_column(col, justify="left" if col == "stack" else "right")
    for name, values in costs.items():
        table.add_row(name, f"{statistics.median(values):.1f}", f"{min(values):.1f}")
    console.print(table)
    guarded, bare = (statistics.median(v) for v in costs.values())
    console.print(f"the guard costs {guarded - bare:.1f} µs a cached search: {bare / guarded:.3f}x the throughput")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--baseline", default="main", help="git revision to compare with (default: main)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per round and server")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--max-requests", type=int, default=40_000)
    parser.add_argument("--in-process-only", action="store_true", help="only the in-process measurement")
    args = parser.parse_args()
    in_process(rounds=15, calls=2000)
    if args.in_process_only:
        return
    trees = {}
    with tempfile.TemporaryDirectory(prefix="ragstore-limits-") as tmp, ExitStack() as stack:
        trees[f"baseline ({args.baseline})"] = exported_src(args.baseline, Path(tmp))
        trees["this tree"] = ROOT / "src"
        bases = {}
        for name, src in trees.items():
            os.environ["PYTHONPATH"] = str(src)  # the server's `ragstore` imports this tree first
            bases[name] = stack.enter_context(server(None, 1, None))[0]
            warm_up(bases[name])
        rates: dict[str, list[float]] = {name: [] for name in trees}
        table = Table(title=f"cached search, {args.clients} clients, {args.duration:.0f} s a round")
        for col in ("round", "server", "req/s", "p50 ms", "p95 ms", "errors"):
            table.add_column(col, justify="left" if col == "server" else "right")
        for round_no in range(1, args.rounds + 1):
            order = list(bases.items())
            for name, base in order if round_no % 2 else reversed(order):  # who goes first alternates
                started = time.perf_counter()
                results = asyncio.run(drive(base, args.clients, args.duration, args.max_requests, {"repeated": 1}, []))
                latencies, errors = results["repeated"]
                rate = len(latencies) / (time.perf_counter() - started)
                rates[name].append(rate)
                p50, p95 = np.percentile(latencies, [50, 95])
                table.add_row(str(round_no), name, f"{rate:,.0f}", f"{p50:.1f}", f"{p95:.1f}", str(errors))
        console.print(table)
        base_rate, new_rate = (statistics.median(r) for r in rates.values())
        console.print(
            f"median req/s: baseline {base_rate:,.0f}, this tree {new_rate:,.0f}: {new_rate / base_rate:.3f}x"
        )


if __name__ == "__main__":
    main()
