"""Application records: one CRUD call in process and over HTTP at 50 concurrent clients (issue 18).

    python bench/chat_records.py                                     # SQLite
    python bench/chat_records.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/test
    python bench/chat_records.py --calls 2000 --clients 1,50 --duration 10 --port 8660 [--workers 2] [--pace 1]

In process: `store.records` get / list / create / update of workflows and workflow executions, one call at a
time, against a store holding `--seed` executions (targets: p95 <= 5 ms). Over HTTP: `ragstore serve` with an
admin key (auth required, rate limits out of reach), driven from this process by `--clients` aiohttp clients
for `--duration` seconds or `--max-requests`, a mix of GET one, GET a page, POST and PATCH (target: p95 <=
20 ms): closed loop (every client sends again as soon as it is answered: the server saturated, where latency
is clients / throughput by Little's law), and with `--pace S` also paced (each client one request every S
seconds: 50 users of a chat service who read between turns). A fresh data directory (on PostgreSQL a fresh
schema, dropped afterwards); talks only to 127.0.0.1.
Prints a table per part; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from load import postgres_schema, serving

console = Console()
OPS = ("get", "list", "create", "update")


def percentiles(samples: list[float]) -> tuple[float, float, float]:
    if not samples:
        return (0.0, 0.0, 0.0)
    p50, p95, p99 = np.percentile(np.asarray(samples), [50, 95, 99])
    return float(p50), float(p95), float(p99)


def table(title: str, results: dict[str, tuple[list[float], int]], wall: float | None = None) -> None:
    grid = Table(title=title)
    for name in ("op", "calls", "errors", "p50 ms", "p95 ms", "p99 ms"):
        grid.add_column(name, justify="left" if name == "op" else "right")
    everything: list[float] = []
    for op, (samples, errors) in results.items():
        everything += samples
        p50, p95, p99 = percentiles(samples)
        grid.add_row(op, str(len(samples)), str(errors), f"{p50:.2f}", f"{p95:.2f}", f"{p99:.2f}")
    p50, p95, p99 = percentiles(everything)
    rate = f" ({len(everything) / wall:.0f} calls/s)" if wall else ""
    grid.add_row(f"all{rate}", str(len(everything)), "", f"{p50:.2f}", f"{p95:.2f}", f"{p99:.2f}")
    console.print(grid)


def environment(data_dir: Path, database_url: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAGSTORE_", "DATABASE_URL"))}
    env.update(
        RAGSTORE_DATA_DIR=str(data_dir),
        RAGSTORE_LOG_LEVEL="WARNING",
        RAGSTORE_AUTH="required",
        RAGSTORE_RATE_LIMIT_DEFAULT="100000000/minute",
        MAX_CONCURRENT_REQUESTS="10000",
    )
    if database_url:
        env["DATABASE_URL"] = database_url
    return env


def in_process(env: dict[str, str], calls: int, seed: int) -> None:
    os.environ.update(env)
    from ragstore.config import load_settings
    from ragstore.service import RagStore

    with RagStore.open(load_settings(), recover=False) as store:
        records = store.records
        workflow = records.create("workflows", {"name": "bench", "definition": {"steps": ["a", "b"]}})
        ids = [
            records.create("workflow_executions", {"workflow_id": workflow.id, "status": "succeeded"}).id
            for _ in range(seed)
        ]
        versions = {i: 1 for i in ids}
        rng = random.Random(7)

        def update() -> None:
            chosen = rng.choice(ids)
            made = records.update("workflow_executions", chosen, {"version": versions[chosen], "outputs": {"n": 1}})
            versions[chosen] = made.version  # type: ignore[attr-defined]

        actions: dict[str, Callable[[], Any]] = {
            "get": lambda: records.get("workflow_executions", rng.choice(ids)),
            "list": lambda: records.list(
                "workflow_executions", filters={"workflow_id": workflow.id, "status": "succeeded"}, limit=20
            ),
            "create": lambda: records.create("workflow_executions", {"workflow_id": workflow.id, "status": "running"}),
            "update": update,
        }
        results: dict[str, tuple[list[float], int]] = {op: ([], 0) for op in OPS}
        for _ in range(50):  # warm the pool and the statement caches
            actions["get"]()
        for i in range(calls):
            op = OPS[i % len(OPS)]
            started = time.perf_counter()
            actions[op]()
            results[op][0].append((time.perf_counter() - started) * 1000)
    table(f"in process, one call at a time ({seed} executions seeded)", results)


@contextmanager
def served(env: dict[str, str], port: int, workers: int) -> Iterator[tuple[str, dict[str, str]]]:
    cli = [sys.executable, "-m", "ragstore.cli"]
    made = subprocess.run(
        [*cli, "keys", "create", "--name", "bench", "--role", "admin", "--json"],
        env=env,
        check=True,
        capture_output=True,
    )
    headers = {"Authorization": f"Bearer {json.loads(made.stdout)['key']}"}
    with serving(env, port, workers) as base:
        yield base, headers


async def drive(
    base: str, headers: dict[str, str], clients: int, duration_s: float, max_requests: int, pace_s: float = 0.0
) -> tuple[dict[str, tuple[list[float], int]], float]:
    """`pace_s` 0: each client sends its next request as soon as the last is answered (closed loop, the
    server saturated); > 0: each client sends one request every `pace_s` seconds (users who read between
    turns), starting at a random offset so they do not arrive in step."""
    results: dict[str, tuple[list[float], int]] = {op: ([], 0) for op in OPS}
    rng = random.Random(11)
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=30), headers=headers
    ) as http:
        async with http.get(f"{base}/v1/workflows", params={"filter": '{"name": "bench"}'}) as answer:
            workflow_id = (await answer.json())["items"][0]["id"]
        issued = 0
        deadline = time.monotonic() + duration_s

        async def client(number: int) -> None:
            nonlocal issued
            mine: list[list[int]] = []  # [id, version] of the executions this client made
            if pace_s > 0:
                await asyncio.sleep(rng.random() * pace_s)
            while issued < max_requests and time.monotonic() < deadline:
                turn = time.monotonic()
                issued += 1
                op = OPS[rng.randrange(len(OPS))] if mine else "create"
                url, method, body = f"{base}/v1/workflow_executions", "POST", None
                if op == "create":
                    body = {"workflow_id": workflow_id, "status": "running", "inputs": {"client": number}}
                elif op == "get":
                    url, method = f"{url}/{rng.choice(mine)[0]}", "GET"
                elif op == "list":
                    url, method = f"{url}?limit=20&filter=" + '{"status":"running"}', "GET"
                else:
                    chosen = rng.choice(mine)
                    url, method, body = f"{url}/{chosen[0]}", "PATCH", {"version": chosen[1], "status": "succeeded"}
                started = time.perf_counter()
                try:
                    async with http.request(method, url, json=body) as answer:
                        payload = await answer.read()
                        status = answer.status
                except (TimeoutError, aiohttp.ClientError):
                    results[op] = (results[op][0], results[op][1] + 1)
                    continue
                elapsed = (time.perf_counter() - started) * 1000
                if status >= 400:
                    results[op] = (results[op][0], results[op][1] + 1)
                    continue
                results[op][0].append(elapsed)
                if op == "create":
                    mine.append([json.loads(payload)["id"], 1])
                elif op == "update":
                    chosen[1] += 1
                if pace_s > 0:
                    await asyncio.sleep(max(0.0, pace_s - (time.monotonic() - turn)))

        started = time.monotonic()
        await asyncio.gather(*(client(n) for n in range(clients)))
    return results, time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--calls", type=int, default=2000, help="In-process calls (a quarter of each op).")
    parser.add_argument("--seed", type=int, default=2000, help="Executions stored before measuring.")
    parser.add_argument("--clients", default="1,50", help="Concurrent HTTP clients; a list runs each in turn.")
    parser.add_argument("--workers", type=int, default=1, help="Server processes (PostgreSQL only: > 1).")
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--max-requests", type=int, default=20_000)
    parser.add_argument("--port", type=int, default=8660)
    parser.add_argument(
        "--pace",
        type=float,
        default=0.0,
        help="Seconds between one client's requests (0: closed loop, as fast as answers come).",
    )
    args = parser.parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="ragstore-records-bench-"))
    try:
        with postgres_schema(args.database_url) as url:
            env = environment(data_dir, url)
            subprocess.run([sys.executable, "-m", "ragstore.cli", "init"], env=env, check=True, capture_output=True)
            dialect = "PostgreSQL" if url else "SQLite"
            console.print(f"[bold]application records on {dialect}[/]")
            in_process(env, args.calls, args.seed)
            with served(env, args.port, args.workers) as (base, headers):
                for clients in (int(c) for c in args.clients.split(",")):
                    for pace in sorted({0.0, args.pace}):
                        results, wall = asyncio.run(
                            drive(base, headers, clients, args.duration, args.max_requests, pace)
                        )
                        how = "closed loop" if pace == 0 else f"one request per client every {pace:g} s"
                        title = f"HTTP, {clients} clients ({how}), {args.duration:.0f} s, {args.workers} worker(s)"
                        table(title, results, wall)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
