"""What a Redis restart costs a serving ragstore: search latency, cache hit rate and errors, 5 s at a time.

    python bench/redis_restart.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/test --workers 2
    python bench/redis_restart.py                          # SQLite + Redis, 1 process

Starts a redis-server of its own (port `--redis-port`, no RDB, no AOF, in a temporary folder: never a Redis
anyone else uses), serves a fresh store with the sample corpus over it (auth required, an admin key, rate
limits counted in Redis), and drives `--clients` clients that search as a chat service does: mostly the 60
sample questions again (answered from the result cache), some from a longer tail of variants that one
process caches and another finds in Redis. After `--warm` seconds it measures `--before` seconds, restarts
Redis (SHUTDOWN NOSAVE, then the same command again: everything in it is gone), and measures `--after`
seconds: per 5-second bucket the search p50/p95, errors, the hit rates of the search-result and the
query-embedding caches from GET /metrics (a hit in this process's tier or in Redis), and /health.

It also asks what the restart does to what lives beside the caches: a user's login (sessions: rows in the
database), the rate-limit counters (in Redis), and whether every key ragstore writes has a TTL (what the
eviction policy of deploy/redis/redis.conf relies on). Prints; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import numpy as np
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from load import questions_of_the_corpus, warm_up
from served import RAGSTORE, create_key, load_samples, serving_process, store_env
from soak import scratch
from soak_probe import log_messages, metric_sum
from soak_report import console

TAIL_WORDS = ["요금", "기간", "조건", "price", "limit", "rule", "서울", "plan", "환불", "계약"]
PASSWORD = "soak-restart-Pa55word!"  # a throwaway user of a throwaway store


@contextmanager
def own_redis(port: int) -> Iterator[tuple[str, Any]]:
    """A redis-server on 127.0.0.1:`port` with no persistence, and a function that restarts it (seconds taken)."""
    folder = Path(tempfile.mkdtemp(prefix="ragstore-redis-"))
    cmd = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    cmd += ["--daemonize", "yes", "--dir", str(folder), "--logfile", str(folder / "r.log")]
    cli = ["redis-cli", "-p", str(port)]

    def start() -> None:
        subprocess.run(cmd, check=True)
        for _ in range(100):
            if subprocess.run([*cli, "ping"], capture_output=True, text=True).stdout.strip() == "PONG":
                return
            time.sleep(0.05)
        raise SystemExit(f"redis-server on {port} did not answer: {(folder / 'r.log').read_text()[-500:]}")

    def restart(down_s: float) -> float:
        started = time.monotonic()
        subprocess.run([*cli, "shutdown", "nosave"], capture_output=True)
        time.sleep(down_s)
        start()
        return time.monotonic() - started

    if subprocess.run([*cli, "ping"], capture_output=True).returncode == 0:
        raise SystemExit(f"something answers on port {port} already: choose another --redis-port")
    start()
    try:
        yield f"redis://127.0.0.1:{port}/0", restart
    finally:
        subprocess.run([*cli, "shutdown", "nosave"], capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


def key_audit(url: str) -> tuple[dict[str, list[int]], str]:
    """Keys by kind ([with a TTL, without]) and Redis's used memory: whether every key ragstore writes expires
    is what deploy/redis/redis.conf's eviction policy was chosen on."""
    import redis

    client = redis.Redis.from_url(url)
    kinds: dict[str, list[int]] = {}
    keys = list(client.scan_iter(count=1000))
    pipe = client.pipeline(transaction=False)  # one round trip for every PTTL: this runs just before the restart
    for key in keys:
        pipe.pttl(key)
    for key, ttl in zip(keys, pipe.execute(), strict=True):
        # The key's fixed parts: digests, ids and the database's identity (long parts) become `*`.
        parts = key.decode(errors="replace").split(":")[:-1] or ["?"]
        kind = ":".join("*" if len(part) > 16 or part.isdigit() else part for part in parts[:5])
        if ttl != -2:  # -2: expired since the scan
            kinds.setdefault(kind, [0, 0])[0 if ttl >= 0 else 1] += 1
    memory = client.info("memory")["used_memory_human"]
    client.close()
    return kinds, memory


class Buckets:
    """Latencies and errors of the searches by 5-second bucket, and the cache counters at each bucket's end."""

    def __init__(self, width: float) -> None:
        self.width = width
        self.zero = time.monotonic()  # moved to the restart's instant when it happens
        self.latencies: dict[int, list[float]] = {}
        self.errors: dict[int, int] = {}
        self.counters: dict[int, dict[str, float]] = {}
        self.health: dict[int, str] = {}

    def bucket(self) -> int:
        return int((time.monotonic() - self.zero) // self.width)

    def record(self, ms: float | None) -> None:
        b = self.bucket()
        if ms is None:
            self.errors[b] = self.errors.get(b, 0) + 1
        else:
            self.latencies.setdefault(b, []).append(ms)


async def drive(base: str, headers: dict[str, str], args: argparse.Namespace, buckets: Buckets, stop: Any) -> None:
    questions = questions_of_the_corpus()
    # The tail: variants of the questions (each a query of its own, embedded and searched once per cache).
    tail = [f"{questions[i % len(questions)]} {TAIL_WORDS[i % len(TAIL_WORDS)]}{i}" for i in range(args.tail)]
    rng = np.random.default_rng(11)

    async def client(http: aiohttp.ClientSession) -> None:
        while not stop.is_set():
            query = questions[rng.integers(len(questions))] if rng.random() < 0.7 else tail[rng.integers(len(tail))]
            started = time.perf_counter()
            try:
                async with http.post(f"{base}/v1/collections/samples/search", json={"query": query, "k": 5}) as r:
                    await r.read()
                    ok = r.status == 200
            except (TimeoutError, aiohttp.ClientError):
                ok = False
            buckets.record((time.perf_counter() - started) * 1000 if ok else None)

    timeout = aiohttp.ClientTimeout(total=30)
    connector = aiohttp.TCPConnector(limit=args.clients)
    async with aiohttp.ClientSession(headers=headers, timeout=timeout, connector=connector) as http:
        await asyncio.gather(*(client(http) for _ in range(args.clients)))


async def scrape(base: str, headers: dict[str, str], buckets: Buckets) -> None:
    """The cache counters and /health at the end of a bucket."""
    async with aiohttp.ClientSession(headers=headers, timeout=aiohttp.ClientTimeout(total=10)) as http:
        async with http.get(f"{base}/metrics") as r:
            text = await r.text()
        async with http.get(f"{base}/health") as r:
            health = (await r.json()).get("status", "?")
    name = "ragstore_cache_requests_total"
    counts = {
        f"{layer}:{outcome}": metric_sum(text, name, layer=layer, outcome=outcome)
        for layer in ("search", "emb")
        for outcome in ("hit_local", "hit_shared", "miss")
    }
    b = buckets.bucket() - 1  # the bucket that just ended
    buckets.counters[b], buckets.health[b] = counts, health


async def run(base: str, headers: dict[str, str], login: dict[str, str], args: argparse.Namespace, restart: Any) -> Any:
    buckets = Buckets(args.bucket)
    stop = asyncio.Event()
    load = asyncio.create_task(drive(base, headers, args, buckets, stop))
    await asyncio.sleep(args.warm)
    notes: dict[str, Any] = {}
    buckets.zero = time.monotonic() + args.before - 0.05  # the restart happens at bucket 0
    await scrape(base, headers, buckets)  # the counters at the start of the first bucket measured
    while buckets.bucket() < 0:
        await asyncio.sleep(buckets.width - (time.monotonic() - buckets.zero) % buckets.width + 0.01)
        await scrape(base, headers, buckets)
    notes["before"] = await side_effects(base, headers, login)
    notes["keys"] = await asyncio.to_thread(key_audit, args.redis_url)
    notes["restart_s"] = await asyncio.to_thread(restart, args.down)
    notes["after"] = await side_effects(base, headers, login)
    while buckets.bucket() < args.after / args.bucket:
        await asyncio.sleep(buckets.width - (time.monotonic() - buckets.zero) % buckets.width + 0.01)
        await scrape(base, headers, buckets)
    notes["end"] = await side_effects(base, headers, login, refresh=True)
    stop.set()
    await load
    return buckets, notes


async def side_effects(
    base: str, headers: dict[str, str], login: dict[str, str], refresh: bool = False
) -> dict[str, Any]:
    """The user's session (GET /v1/auth/me with its access token; a refresh at the end) and the key's
    rate-limit budget left (the RateLimit-Remaining of an admin GET)."""
    async with httpx.AsyncClient(base_url=base, timeout=10) as http:
        me = await http.get("/v1/auth/me", headers={"Authorization": f"Bearer {login['access_token']}"})
        listed = await http.get("/v1/keys", headers=headers)
        seen = {"session": me.status_code, "ratelimit_remaining": listed.headers.get("ratelimit-remaining")}
        if refresh:
            renewed = await http.post("/v1/auth/refresh", json={"refresh_token": login["refresh_token"]})
            seen["refresh"] = renewed.status_code
    return seen


def report(title: str, buckets: Buckets, notes: dict[str, Any], width: float) -> None:
    grid = Table(title=title)
    for col in ("bucket s", "searches", "req/s", "errors", "p50 ms", "p95 ms", "search hit %", "from Redis %"):
        grid.add_column(col, justify="right")
    grid.add_column("emb hit %", justify="right")
    grid.add_column("/health")

    def rates(first: int, last: int) -> tuple[str, str, str]:
        if first - 1 not in buckets.counters or last not in buckets.counters:
            return "", "", ""
        a, b = buckets.counters[first - 1], buckets.counters[last]
        d = {k: b[k] - a[k] for k in b}
        out = []
        for layer in ("search", "emb"):
            hits = d[f"{layer}:hit_local"] + d[f"{layer}:hit_shared"]
            total = hits + d[f"{layer}:miss"]
            out.append(f"{100 * hits / total:.1f}" if total else "")
            if layer == "search":
                out.append(f"{100 * d['search:hit_shared'] / total:.1f}" if total else "")
        return out[0], out[1], out[2]

    def row(label: str, first: int, last: int, health: str = "") -> None:
        values = [v for b in range(first, last + 1) for v in buckets.latencies.get(b, [])]
        errors = sum(buckets.errors.get(b, 0) for b in range(first, last + 1))
        seconds = (last - first + 1) * width
        p50, p95 = np.percentile(values, [50, 95]) if values else (float("nan"),) * 2
        hit, shared, emb = rates(first, last)
        grid.add_row(
            label,
            f"{len(values):,}",
            f"{len(values) / seconds:,.0f}",
            str(errors),
            f"{p50:.1f}",
            f"{p95:.1f}",
            hit,
            shared,
            emb,
            health,
        )

    lowest = min(buckets.counters)
    for b in sorted(k for k in buckets.counters if k > lowest):
        start = b * width
        row(f"{start:+.0f}..{start + width:+.0f}", b, b, buckets.health.get(b, ""))
    end = max(buckets.counters)
    row("minute before", lowest + 1, -1)
    row("minute after", 0, end)
    row("first 10 s after", 0, int(10 // width) - 1)
    console.print(grid)
    console.print(f"restart (shutdown nosave, start, PING answered): {notes['restart_s']:.2f} s")
    for when in ("before", "after", "end"):
        console.print(f"{when} the restart: {notes[when]}")
    grid = Table(
        "key kind", "with a TTL", "without", title=f"keys in Redis before the restart (used {notes['memory']})"
    )
    for kind, (with_ttl, without) in sorted(notes["keys"].items()):
        grid.add_row(kind, f"{with_ttl:,}", str(without))
    console.print(grid)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database-url", help="PostgreSQL server URL (a scratch database is made on it)")
    parser.add_argument("--workers", type=int, default=1, help="server processes (more than 1 needs PostgreSQL)")
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--warm", type=float, default=30.0, help="seconds of traffic before the measured minute")
    parser.add_argument("--before", type=float, default=60.0)
    parser.add_argument("--after", type=float, default=60.0)
    parser.add_argument("--bucket", type=float, default=5.0)
    parser.add_argument("--down", type=float, default=0.0, help="seconds Redis stays down in the restart")
    parser.add_argument("--tail", type=int, default=600, help="distinct tail queries (30 %% of the searches)")
    parser.add_argument(
        "--local-entries",
        type=int,
        help="RAGSTORE_CACHE_MAX_ENTRIES: an in-process tier smaller than the queries asked, so that part of "
        "the hits come from Redis, as in a service whose queries outnumber that tier (default: 10,000)",
    )
    parser.add_argument("--port", type=int, default=18720)
    parser.add_argument("--redis-port", type=int, default=18779)
    args = parser.parse_args()
    profile = ("PostgreSQL" if args.database_url else "SQLite") + f" + Redis, {args.workers} process(es)"
    data_dir = Path(tempfile.mkdtemp(prefix="ragstore-redis-restart-"))
    log = data_dir.parent / f"{data_dir.name}.log"
    with ExitStack() as stack:
        stack.callback(shutil.rmtree, data_dir, True)
        redis_url, restart = stack.enter_context(own_redis(args.redis_port))
        args.redis_url = redis_url
        url, _ = stack.enter_context(scratch(args.database_url))
        env = store_env(data_dir, url, redis_url, keyed=True)
        if args.local_entries is not None:
            env["RAGSTORE_CACHE_MAX_ENTRIES"] = str(args.local_entries)
        load_samples(env)
        headers = create_key(env, "admin")
        email = "restart@example.com"
        made = [RAGSTORE, "users", "create", email, "--role", "admin", "--password-stdin"]
        subprocess.run(made, env=env, input=PASSWORD + "\n", text=True, check=True, capture_output=True)
        with serving_process(env, args.port, args.workers, log=log) as (base, _):
            login = httpx.post(f"{base}/v1/auth/login", json={"email": email, "password": PASSWORD}).json()
            warm_up(base, headers)
            buckets, notes = asyncio.run(run(base, headers, login, args, restart))
        said = log_messages(log)
    notes["memory"] = notes["keys"][1]
    notes["keys"] = notes["keys"][0]
    local = f"in-process tier {args.local_entries or 10_000:,} entries"
    title = f"Redis restart at 0 s: {profile}, {args.clients} clients, {args.tail:,} tail queries, {local}"
    report(title, buckets, notes, args.bucket)
    console.print(f"server log: {sum(said.values())} messages, {len(said)} distinct")
    for line, count in said.most_common(12):
        console.print(f"  {count:5d} x {line}", highlight=False, markup=False)
    log.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
