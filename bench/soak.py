"""A soak: minutes of mixed traffic against `ragstore serve`, sampled for errors, latency, memory and handles.

    python bench/soak.py                                   # SQLite + embedded index, 1 process, 10 min
    python bench/soak.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/test \
        --redis-url redis://127.0.0.1:6379/7 --workers 2 --plot docs/img/soak-postgresql.png
    python bench/soak.py --minutes 1 --sample 10          # a quick look

A load test (load.py) says how fast; a soak says whether the server stays the same while it works: no
errors, no memory that only grows, no descriptor or connection left behind, an outbox that drains, and a
store that `ragstore check` finds consistent afterwards. The server is started as load.py starts it (a fresh
data directory with the sample corpus; on PostgreSQL a scratch database, dropped afterwards) but with auth
required and an admin key, under rate limits no run reaches, so that every request pays what it pays in
production. 50 asyncio clients (closed loop: each sends its next request when the last is answered) mix:

- `search`: dense, lexical or hybrid; mostly the sample questions again (the result cache), some unique;
- `ingest`: a new short document, indexed before the response;
- `delete`: a document this soak ingested (never the corpus);
- `chat`: start a conversation, add messages to it, read it back or assemble its context;
- `admin`: the admin and operator GETs (consistency history, backup status, audit, usage, keys, jobs,
  health, metrics, analytics).
Every `--sample` seconds it records the window's requests, errors and p50/p95/p99 per operation, the RSS and
open descriptors summed over the server's processes (/proc), the database connections (PostgreSQL:
pg_stat_activity on the scratch database; SQLite: descriptors on the database files) and the outbox
backlog (GET /metrics). Bounded by `--minutes` and `--max-requests`; talks only to 127.0.0.1 (and the given
PostgreSQL and Redis). Prints the samples, the totals and PASS/FAIL per target; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from load import questions_of_the_corpus
from served import RAGSTORE, create_key, load_samples, serving_process, store_env
from soak_probe import count_pg_connections, metric_sum, process_stats
from soak_report import Sample, console, plot, summarise
from soak_traffic import OPS, Traffic

MIB = 1024 * 1024


@contextmanager
def scratch(database_url: str | None) -> Iterator[tuple[str | None, str | None]]:
    """The database URL the server uses and the database's name (None: SQLite in the data directory).

    A database of its own rather than load.py's schema: pg_stat_activity counts sessions by database, so
    every session on it is the server's, whatever else runs on the same PostgreSQL."""
    if database_url is None:
        yield None, None
        return
    from sqlalchemy import make_url

    from pgdb import scratch_database

    with scratch_database(database_url, prefix="ragstore_soak") as url:
        yield url, make_url(url).database


async def sampler(
    traffic: Traffic, base: str, pid: int, args: argparse.Namespace, db: tuple[Path | None, str | None]
) -> list[Sample]:
    """One `Sample` every `args.sample` seconds until the traffic stops, then one of the last window."""
    db_file, pg_name = db
    samples: list[Sample] = []
    started = time.monotonic()
    cpu_before = process_stats(pid, None).cpu_s
    async with aiohttp.ClientSession(headers=traffic.headers, timeout=aiohttp.ClientTimeout(total=60)) as http:
        tick = started
        while not traffic.done:
            tick += args.sample
            while time.monotonic() < tick and not traffic.done:
                await asyncio.sleep(min(0.5, max(0.0, tick - time.monotonic())))
            window = traffic.take_window()
            elapsed = time.monotonic() - started
            if traffic.done and window.seconds < args.sample / 3:
                break  # a last scrap of a window says nothing about rates
            stats = process_stats(pid, db_file)
            answered = sum(len(v) + window.errors[op] for op, v in window.latencies.items())
            cpu_ms = 1000 * (stats.cpu_s - cpu_before) / answered if answered else 0.0
            cpu_before = stats.cpu_s
            async with http.get(f"{base}/metrics") as response:
                metrics = (await response.text()) if response.status == 200 else ""
            if pg_name is not None:
                connections = await asyncio.to_thread(count_pg_connections, args.database_url, pg_name)
            else:
                connections = stats.db_file_fds
            samples.append(
                Sample(
                    t=round(elapsed, 1),
                    seconds=round(window.seconds, 2),
                    ops={op: window.figures(op) for op in OPS},
                    processes=stats.processes,
                    rss_mib=round(stats.rss_bytes / MIB, 1),
                    open_files=stats.open_files,
                    db_connections=connections,
                    db_checked_out=metric_sum(metrics, "ragstore_db_connections"),
                    outbox_pending=metric_sum(metrics, "ragstore_outbox_pending_operations"),
                    cpu_ms_per_request=round(cpu_ms, 2),
                    cache={layer: cache_counts(metrics, layer) for layer in ("search", "emb")},
                )
            )
            console.print(samples[-1].line(), highlight=False)
    return samples


def cache_counts(metrics: str, layer: str) -> list[float]:
    """[hits, misses] of one cache layer: a hit from this process's tier or from Redis is a hit."""
    every = metric_sum(metrics, "ragstore_cache_requests_total", layer=layer)
    misses = metric_sum(metrics, "ragstore_cache_requests_total", layer=layer, outcome="miss")
    return [every - misses, misses]


async def soak(base: str, headers: dict[str, str], pid: int, args: argparse.Namespace, db: Any) -> tuple[Any, ...]:
    traffic = Traffic(base, headers, questions_of_the_corpus(), args.max_requests, args.minutes * 60, seed=args.seed)
    connector = aiohttp.TCPConnector(limit=args.clients)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout, headers=headers) as http:
        runner = asyncio.gather(*(traffic.client(http) for _ in range(args.clients)))
        watcher = asyncio.create_task(sampler(traffic, base, pid, args, db))
        await runner
        traffic.done = True
        samples = await watcher
    return traffic, samples


def consistency_check(env: dict[str, str]) -> tuple[int, str]:
    """`ragstore check` on the stopped store: its exit code (0 clean, 1 problems) and what it found."""
    done = subprocess.run([RAGSTORE, "check", "--json"], env=env, capture_output=True, text=True, timeout=600)
    try:
        report = json.loads(done.stdout)
    except json.JSONDecodeError:
        return done.returncode, (done.stdout + done.stderr).strip()[-2000:]
    left = {kind: n for kind, n in (report.get("remaining") or {}).items() if n}
    said = f"state {report.get('state')}, {report.get('problems')} problems, remaining {left or 'none'}"
    return done.returncode, said


def forget_redis_keys(redis_url: str, namespace: str) -> int:
    """Delete this run's keys (its own cache namespace) from a Redis others use: never a flush."""
    import redis

    client = redis.Redis.from_url(redis_url)
    deleted = 0
    for key in client.scan_iter(match=f"{namespace}:*", count=1000):
        deleted += int(client.delete(key))
    client.close()
    return deleted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--sample", type=float, default=30.0, help="seconds between samples")
    parser.add_argument("--database-url", help="PostgreSQL server URL (a scratch database is made on it)")
    parser.add_argument("--redis-url", help="Redis URL (the run uses a cache namespace of its own)")
    parser.add_argument("--workers", type=int, default=1, help="server processes (more than 1 needs PostgreSQL)")
    parser.add_argument("--max-requests", type=int, default=2_000_000, help="upper bound on requests")
    parser.add_argument("--port", type=int, default=18710)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--plot", type=Path, help="write the samples as a PNG here")
    parser.add_argument("--json", type=Path, help="write the samples and the summary here")
    parser.add_argument("--keep-log", type=Path, help="copy the server's stderr here")
    parser.add_argument("--data-dir", type=Path, help="a new folder for the store, kept afterwards (SQLite only)")
    args = parser.parse_args()

    profile = ("PostgreSQL" if args.database_url else "SQLite") + (" + Redis" if args.redis_url else "")
    title = f"soak: {profile}, {args.workers} process(es), {args.clients} clients, {args.minutes:g} min"
    namespace = f"soak-{uuid.uuid4().hex[:8]}"
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="ragstore-soak-"))
    data_dir.mkdir(parents=True, exist_ok=True)
    log = data_dir.parent / f"{data_dir.name}.log"
    with ExitStack() as stack:
        if args.data_dir is None:  # kept when named: `ragstore db slow` and friends can look at it afterwards
            stack.callback(shutil.rmtree, data_dir, True)
        url, pg_name = stack.enter_context(scratch(args.database_url))
        env = store_env(data_dir, url, args.redis_url, keyed=True)
        env["RAGSTORE_CACHE_NAMESPACE"] = namespace
        load_samples(env)
        headers = create_key(env, "admin")
        db_file = None if url else data_dir / "ragstore.db"
        console.print(f"[bold]{title}[/] (data {data_dir}, log {log})")
        with serving_process(env, args.port, args.workers, log=log) as (base, proc):
            traffic, samples = asyncio.run(soak(base, headers, proc.pid, args, (db_file, pg_name)))
        code, said = consistency_check(env)
        if args.keep_log:
            shutil.copy(log, args.keep_log)
        if args.redis_url:
            console.print(f"removed {forget_redis_keys(args.redis_url, namespace)} keys of {namespace} from Redis")
    summary = summarise(title, traffic, samples, code, said, log)
    log.unlink(missing_ok=True)
    if args.plot:
        plot(title, samples, args.plot)
    if args.json:
        payload = {"title": title, "samples": [asdict(s) for s in samples], "summary": summary}
        args.json.write_text(json.dumps(payload, indent=1, default=float))


if __name__ == "__main__":
    main()
