"""Load on the HTTP API from a second process on loopback: concurrent clients, a mix of ingest and search.

    python bench/load.py                                   # SQLite + embedded index, 50 clients, 20 s
    python bench/load.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/test \
        --redis-url redis://127.0.0.1:6379/0 --workers 2
    python bench/load.py --clients 50 --duration 20 --max-requests 20000 \
        --mix repeated=1 --mix text=6,vector=3,ingest=1
    python bench/load.py --compare-auth --rounds 6 --duration 10   # cached search: a read key vs auth off

The benchmark starts `ragstore serve` itself (a fresh data directory; on PostgreSQL a fresh schema),
loads the sample corpus, then drives the server from this process with asyncio clients. Every run is
bounded in requests and in time and talks only to 127.0.0.1. Prints requests/s and p50/p95/p99 per
operation; asserts nothing.


Operations:
- `repeated`: one of the 60 sample questions, asked again and again: served from the search-result
  cache (L2) once asked, as long as no write changes the collection;
- `text`: a question made unique (a random word appended): embedded by the server, never cached (the
  server's default mode, or `--text-mode`);
- `vector`: a query vector made unique (a small random perturbation): no embedding, never cached, the
  server's own overhead around the index;
- `ingest`: a new short document (embedded, written through the outbox, indexed before the response).
Each `--mix` runs in turn against the same server and prints its own table.

A mix with `text` also prints the model's own batch encode rate for queries, measured in this process while
the server is idle, just before the mix (LocalEmbedder with the server's RAGSTORE_EMBEDDING_ENGINE, batches
of 32 unique questions like the mix's, for `--encode-seconds`): what one process's model could do at most, and
the text searches' rate as a fraction of it (issue 22 asks for 0.8x at 50 clients).

`--compare-auth` (issue 16) starts two servers over the same kind of store, one with RAGSTORE_AUTH=required
whose clients send a read key (`Authorization: Bearer rsk_...`; every request authenticated, rate-limited
and accounted, under limits set high enough never to refuse), one with RAGSTORE_AUTH=off, and runs the
`repeated` mix (cached searches) against them in alternating rounds: the table gives each round's req/s and
the ratio of the medians. Both get the same headers (the auth-off server ignores its `Authorization`), so the
load generator, which shares the machine, does the same work for both.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import aiohttp
import httpx
import numpy as np
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from served import ROOT, create_key, free_port, load_samples, postgres_schema, serving, store_env

console = Console()


@contextmanager
def server(
    database_url: str | None, workers: int, redis_url: str | None, *, keyed: bool = False
) -> Iterator[tuple[str, dict[str, str]]]:
    """A served store and the headers its clients send (a read key when `keyed`, else none: auth off)."""
    data_dir = Path(tempfile.mkdtemp(prefix="ragstore-load-"))
    env = store_env(data_dir, database_url, redis_url, keyed=keyed)
    load_samples(env)
    headers = create_key(env, "read", "samples") if keyed else {}
    try:
        with serving(env, free_port(), workers) as base:
            yield base, headers
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


async def drive(
    base: str,
    clients: int,
    duration_s: float,
    max_requests: int,
    mix: dict[str, int],
    vectors: list[list[float]],
    headers: dict[str, str] | None = None,
    text_mode: str | None = None,
) -> dict[str, tuple[list[float], int]]:
    questions = questions_of_the_corpus()
    ops = [op for op, weight in mix.items() for _ in range(weight)]
    results: dict[str, tuple[list[float], int]] = {op: ([], 0) for op in mix}
    issued = 0
    deadline = time.monotonic() + duration_s
    rng = random.Random(7)

    async def client(http: aiohttp.ClientSession) -> None:
        nonlocal issued
        while issued < max_requests and time.monotonic() < deadline:
            issued += 1
            op = rng.choice(ops)
            search = f"{base}/v1/collections/samples/search"
            if op == "repeated":
                url, body = search, {"query": rng.choice(questions), "k": 5}
            elif op == "text":
                query = f"{rng.choice(questions)} {rng.choice(WORDS)}{rng.randrange(10**6)}"
                url, body = search, {"query": query, "k": 5, **({"mode": text_mode} if text_mode else {})}
            elif op == "vector":
                base_vector = np.asarray(rng.choice(vectors))
                noise = np.asarray([rng.gauss(0, 0.01) for _ in range(len(base_vector))])
                url, body = search, {"vector": (base_vector + noise).tolist(), "k": 5}
            else:
                text = f"부하 시험 문서 {uuid.uuid4().hex}: 서울 지하철 환승 할인은 30분 안에 적용된다."
                url, body = f"{base}/v1/collections/samples/documents", {"text": text}
            started = time.perf_counter()
            try:
                async with http.post(url, json=body) as response:
                    await response.read()
                    status = response.status
            except (TimeoutError, aiohttp.ClientError) as exc:
                latencies, errors = results[op]
                results[op] = (latencies, errors + 1)
                console.print(f"[red]{op}: {type(exc).__name__} after {time.perf_counter() - started:.1f} s[/]")
                continue
            elapsed = (time.perf_counter() - started) * 1000
            latencies, errors = results[op]
            if status >= 400:
                results[op] = (latencies, errors + 1)
            else:
                latencies.append(elapsed)

    # aiohttp, not httpx: at 50 connections httpx's pool used more CPU than the server it measured
    # (410 against 1,500 req/s for the same server).
    connector = aiohttp.TCPConnector(limit=clients)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout, headers=headers or {}) as http:
        await asyncio.gather(*(client(http) for _ in range(clients)))
    return results


WORDS = ["요금", "기간", "조건", "price", "limit", "rule", "서울", "plan"]


def query_vectors() -> list[list[float]]:
    """Real query embeddings from the default model, so vector searches land where text searches do."""
    from ragstore.embeddings.local import LocalEmbedder

    embedder = LocalEmbedder()
    texts = ["전세 계약", "환불 기간", "marathon training", "김치 담그는 법", "API rate limit"]
    return [v.tolist() for v in np.asarray(embedder.embed(texts, kind="query"), dtype=np.float32)]


def query_encode_rate(seconds: float, batch: int = 32) -> float:
    """Queries/s of the default model encoding batches of `batch` unique questions (at least three batches)."""
    from ragstore.config import Settings
    from ragstore.embeddings.local import LocalEmbedder

    embedder = LocalEmbedder(engine=Settings().embedding_engine)  # the server's RAGSTORE_EMBEDDING_ENGINE
    questions = questions_of_the_corpus()
    rng = random.Random(11)

    def texts() -> list[str]:
        return [f"{rng.choice(questions)} {rng.choice(WORDS)}{rng.randrange(10**6)}" for _ in range(batch)]

    embedder.embed(texts(), kind="query")  # loaded and warm
    done, started = 0, time.perf_counter()
    while done < 3 * batch or time.perf_counter() - started < seconds:
        embedder.embed(texts(), kind="query")
        done += batch
    return done / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database-url", help="PostgreSQL URL (default: SQLite in a temporary folder)")
    parser.add_argument("--workers", type=int, default=1, help="server processes (more than 1 needs PostgreSQL)")
    parser.add_argument("--redis-url", help="Redis URL for the server's caches and pub/sub (default: none)")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per mix (upper bound)")
    parser.add_argument("--max-requests", type=int, default=20_000, help="requests per mix (upper bound)")
    parser.add_argument(
        "--mix",
        action="append",
        help="op=weight,... of repeated, text, vector, ingest; repeat the option for several runs "
        "(default: repeated=1, then text=6,vector=3,ingest=1)",
    )
    parser.add_argument(
        "--text-mode", help="search mode of the text mix (e.g. dense: the embedding without the lexical side)"
    )
    parser.add_argument("--encode-seconds", type=float, default=4.0, help="the model's batch encode rate, per text mix")
    parser.add_argument("--compare-auth", action="store_true", help="cached search: a read key against auth off")
    parser.add_argument("--rounds", type=int, default=6, help="alternating rounds of --compare-auth")
    args = parser.parse_args()
    if args.compare_auth:
        compare_auth(args)
        return
    mixes = args.mix or ["repeated=1", "text=6,vector=3,ingest=1"]
    vectors = query_vectors()
    backend = ("PostgreSQL" if args.database_url else "SQLite") + (" + Redis" if args.redis_url else "")
    with postgres_schema(args.database_url) as url, server(url, args.workers, args.redis_url) as (base, _):
        for spec in mixes:
            mix = {op: int(w) for op, w in (part.split("=") for part in spec.split(","))}
            if "repeated" in mix:
                warm_up(base)
            encode_rate = query_encode_rate(args.encode_seconds) if "text" in mix else None
            started = time.perf_counter()
            results = asyncio.run(
                drive(base, args.clients, args.duration, args.max_requests, mix, vectors, text_mode=args.text_mode)
            )
            wall = time.perf_counter() - started
            report(f"{backend}, {args.workers} server process(es), {args.clients} clients, {spec}", results, wall)
            if encode_rate is not None:
                text_rate = len(results["text"][0]) / wall
                console.print(
                    f"model's batch encode rate for queries (batches of 32, this process, server idle): "
                    f"{encode_rate:,.1f} queries/s; text searches {text_rate:,.1f}/s = {text_rate / encode_rate:.2f}x"
                )


def compare_auth(args: argparse.Namespace) -> None:
    """Cached searches against a keyed server and an auth-off one, in alternating rounds (same run)."""
    if args.database_url:
        raise SystemExit("--compare-auth serves two stores side by side: it runs on SQLite only")
    mix = {"repeated": 1}
    rates: dict[str, list[float]] = {"a read key (auth required)": [], "auth off": []}
    with (
        server(None, args.workers, args.redis_url, keyed=True) as keyed,
        server(None, args.workers, args.redis_url) as open_,
    ):
        # The auth-off server is sent a header of the same size (it reads none with auth off), so both runs
        # cost the load generator, which shares the machine, the same: the difference is the server's.
        open_ = (open_[0], {"Authorization": "Bearer " + "x" * (len(keyed[1]["Authorization"]) - 7)})
        stacks = {"a read key (auth required)": keyed, "auth off": open_}
        for base, headers in stacks.values():
            warm_up(base, headers)
        for turn in range(args.rounds):
            order = list(stacks.items()) if turn % 2 == 0 else list(reversed(stacks.items()))
            for name, (base, headers) in order:
                started = time.perf_counter()
                results = asyncio.run(
                    drive(base, args.clients, args.duration, args.max_requests, mix, [], headers=headers)
                )
                wall = time.perf_counter() - started
                latencies, errors = results["repeated"]
                if errors:
                    raise SystemExit(f"{name}: {errors} requests failed")
                rates[name].append(len(latencies) / wall)
    table = Table(title=f"cached search over HTTP, {args.clients} clients, {args.rounds} rounds of {args.duration} s")
    for col in ("stack", "req/s per round", "median req/s", "vs auth off"):
        table.add_column(col, justify="left" if col in ("stack", "req/s per round") else "right")
    floor = float(np.median(rates["auth off"]))
    for name, values in rates.items():
        median = float(np.median(values))
        table.add_row(name, " ".join(f"{v:,.0f}" for v in values), f"{median:,.1f}", f"{median / floor:.3f}x")
    console.print(table)


def questions_of_the_corpus() -> list[str]:
    lines = (ROOT / "samples" / "questions.jsonl").read_text().splitlines()
    return [json.loads(line)["question"] for line in lines]


def warm_up(base: str, headers: dict[str, str] | None = None) -> None:
    """Ask each repeated question once, untimed: what `repeated` measures is the answer from the cache
    (with several server processes, each fills its own process tier, so ask a few times)."""
    with httpx.Client(timeout=60, headers=headers or {}) as http:
        for _ in range(4):
            for question in questions_of_the_corpus():
                http.post(f"{base}/v1/collections/samples/search", json={"query": question, "k": 5}).raise_for_status()


def report(title: str, results: dict[str, tuple[list[float], int]], wall: float) -> None:
    table = Table(title=f"{title}, {wall:.1f} s")
    for col in ("operation", "ok", "errors", "req/s", "p50 ms", "p95 ms", "p99 ms"):
        table.add_column(col, justify="left" if col == "operation" else "right")
    total = 0
    for op, (latencies, errors) in results.items():
        total += len(latencies) + errors
        if not latencies:
            table.add_row(op, "0", str(errors), "", "", "", "")
            continue
        p50, p95, p99 = np.percentile(latencies, [50, 95, 99])
        table.add_row(
            op,
            str(len(latencies)),
            str(errors),
            f"{len(latencies) / wall:,.1f}",
            f"{p50:.1f}",
            f"{p95:.1f}",
            f"{p99:.1f}",
        )
    table.add_row("all", "", "", f"{total / wall:,.1f}", "", "", "")
    console.print(table)


if __name__ == "__main__":
    main()
