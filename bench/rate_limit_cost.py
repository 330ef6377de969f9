"""What rate limits and usage accounting cost a request: the limiter alone, and the metering middleware on a
cached search, against the same app without it, in one run.

    python bench/rate_limit_cost.py [--rounds 7] [--calls 2000] [--redis redis://127.0.0.1:6379/0]

1. The limiter alone (security/ratelimit.py): `bucket_for` + `admit` + `release` for one API key, p50 and
   p95 of each call's wall time, counting in memory and in Redis (two round trips: the hit and the window's
   stats for the RateLimit-* headers); and the hot path a key seen before takes in memory, its lane
   (`lane_of` + `Lane.enter` + `Lane.leave`, window_counter.py).
2. A cached search through the whole app, called in process (no network, no load generator), with the
   metering middleware left out of the stack, with it as the local operator (auth off: usage row only, no
   limiter), and with it for an API key counted in memory and in Redis. The principal is put in the scope
   as the authentication middleware would. CPU time of the event-loop thread per call (what other processes
   on a shared machine do not distort) and the p50 of wall time; rounds alternate between the stacks.
Prints tables; asserts nothing but that every answer was a 200.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))  # this tree, whatever the environment installed

from asgi_scope import search_scope  # noqa: E402
from ragstore import RagStore  # noqa: E402
from ragstore.api.app import create_app  # noqa: E402
from ragstore.api.metering import MeteringMiddleware  # noqa: E402
from ragstore.config import Settings  # noqa: E402
from ragstore.security.principal import Principal, PrincipalKind, Role  # noqa: E402
from ragstore.security.ratelimit import RateLimiter  # noqa: E402

console = Console()
UNLIMITED = "999999999/minute"
KEY = Principal(PrincipalKind.KEY, "bench", {"*": Role.READ}, key_id=1)
BODY = json.dumps({"query": "전세 계약 갱신", "k": 5}).encode()


def _scope(principal: Principal | None) -> dict[str, Any]:
    return search_scope(BODY, state={} if principal is None else {"principal": principal})


def limiter_alone(redis_url: str | None, calls: int) -> dict[str, tuple[float, float]]:
    """p50 and p95 µs of one admission (bucket, admit, release) in memory and in Redis."""
    results: dict[str, tuple[float, float]] = {}
    for name, url in (("memory", None), ("redis", redis_url)):
        if name == "redis" and not url:
            continue
        settings = Settings(
            data_dir=Path(tempfile.gettempdir()),
            redis_url=url,
            cache_namespace=f"bench-{uuid.uuid4().hex[:8]}",
            rate_limit_default=UNLIMITED,
        )
        limiter = RateLimiter(settings, key_limit=lambda key_id: None)

        async def run(limiter: RateLimiter = limiter) -> list[float]:
            times = []
            for _ in range(calls + 200):
                started = time.perf_counter()
                bucket = await limiter.bucket_for(KEY, "127.0.0.1", "/v1/collections/kb/search")
                assert bucket is not None
                admission = await limiter.admit(bucket, 1)
                limiter.release(admission)
                times.append((time.perf_counter() - started) * 1e6)
                assert admission.allowed
            return times[200:]  # the first calls build the storage and connect

        times = sorted(asyncio.run(run()))
        assert limiter.status()["status"] == "ok", limiter.status()
        results[name] = (times[len(times) // 2], times[int(len(times) * 0.95)])
        if name == "memory":  # the hot path the middleware takes for a key seen before: its lane
            lane = limiter.lane_of(KEY)
            assert lane is not None
            lanes = []
            for _ in range(calls + 200):
                started = time.perf_counter()
                lane = limiter.lane_of(KEY)
                assert lane is not None and lane.enter(1) is not None
                lane.leave()
                lanes.append((time.perf_counter() - started) * 1e6)
            lanes = sorted(lanes[200:])
            results["memory, a key's lane (the hot path)"] = (lanes[len(lanes) // 2], lanes[int(len(lanes) * 0.95)])
    return results


def cached_search(redis_url: str | None, rounds: int, calls: int) -> dict[str, tuple[float, float]]:
    statuses: list[int] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": BODY, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    async def timed(app: Any, scope: dict[str, Any]) -> tuple[float, list[float]]:
        walls = []
        started = time.thread_time()
        for _ in range(calls):
            t = time.perf_counter()
            await app(dict(scope), receive, send)
            walls.append((time.perf_counter() - t) * 1e6)
        return (time.thread_time() - started) / calls * 1e6, walls

    def open_store(tmp: str, name: str, **extra: Any) -> RagStore:
        settings = Settings(
            data_dir=Path(tmp) / name,
            query_log=False,
            auth="off",
            rate_limit_default=UNLIMITED,
            cache_namespace=f"bench-{uuid.uuid4().hex[:8]}",
            **extra,
        )
        store = RagStore.open(settings)
        store.collections.create("kb")
        store.documents.add_text("kb", "전세 계약을 갱신할 때 확인할 사항을 정리합니다.", title="전세")
        store.documents.add_text("kb", "A verified backup restores the store and its vectors.", title="backup")
        store.search("kb", "전세 계약 갱신", k=5)  # the result cache holds it from now on
        return store

    with tempfile.TemporaryDirectory(prefix="ragstore-rate-") as tmp:
        memory = open_store(tmp, "memory")
        redis_store = open_store(tmp, "redis", redis_url=redis_url) if redis_url else None
        try:
            stacks: dict[str, tuple[Any, dict[str, Any]]] = {}
            bare = create_app(store=memory)
            bare.user_middleware = [m for m in bare.user_middleware if m.cls is not MeteringMiddleware]
            stacks["without metering"] = (bare, _scope(None))
            stacks["metering, local operator (usage only)"] = (create_app(store=memory), _scope(None))
            stacks["metering, API key, memory limiter"] = (create_app(store=memory), _scope(KEY))
            if redis_store is not None:
                stacks["metering, API key, Redis limiter"] = (create_app(store=redis_store), _scope(KEY))
            for (app, _), store in zip(stacks.values(), [memory, memory, memory, redis_store], strict=False):
                app.state.store = store
            cpu: dict[str, list[float]] = {name: [] for name in stacks}
            wall: dict[str, list[float]] = {name: [] for name in stacks}
            for r in range(rounds):
                order = list(stacks.items())
                for name, (app, scope) in order if r % 2 == 0 else reversed(order):
                    used, walls = asyncio.run(timed(app, scope))
                    cpu[name].append(used)
                    wall[name].extend(walls)
            assert set(statuses) == {200}, set(statuses)
            dropped = memory.components.usage_writer.dropped
        finally:
            memory.close()
            if redis_store is not None:
                redis_store.close()
    console.print(f"usage rows dropped by the writer during the run: {dropped}")
    return {name: (statistics.median(cpu[name]), statistics.median(wall[name])) for name in cpu}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0", help="empty: memory only")
    args = parser.parse_args()
    redis_url = args.redis or None

    alone = limiter_alone(redis_url, args.calls * 2)
    table = Table(title=f"the limiter alone: one admission (bucket, admit, release), {args.calls * 2:,} calls")
    for col in ("counting in", "p50 µs", "p95 µs"):
        table.add_column(col, justify="left" if col == "counting in" else "right")
    for name, (p50, p95) in alone.items():
        table.add_row(name, f"{p50:.1f}", f"{p95:.1f}")
    console.print(table)

    stacks = cached_search(redis_url, args.rounds, args.calls)
    base_cpu, base_wall = stacks["without metering"]
    table = Table(title=f"a cached search in process, {args.rounds} rounds of {args.calls:,} calls (medians)")
    for col in ("stack", "CPU µs", "ratio (throughput)", "wall p50 µs", "ratio"):
        table.add_column(col, justify="left" if col == "stack" else "right")
    for name, (used, p50) in stacks.items():
        table.add_row(name, f"{used:.1f}", f"{base_cpu / used:.3f}x", f"{p50:.1f}", f"{base_wall / p50:.3f}x")
    console.print(table)


if __name__ == "__main__":
    main()
