"""The same searches one by one over HTTP, then in batches (`POST /v1/collections/{name}/search/batch`).

    python bench/search_batch.py                          # 300 text + 300 vector searches, batches of 100
    python bench/search_batch.py --text 300 --vector 300 --batch 100 --rounds 2 [--database-url URL]
    python bench/search_batch.py --text 300 --vector 0 --fake-openai-ms 100   # a remote embedder, simulated

Starts a real `ragstore serve` on 127.0.0.1:8731 (auth required, a read key, limits no run reaches: every
request pays the key check, the rate limiter and the usage log, as in production) over a fresh store holding
the sample corpus, and sends every search from this process, one request at a time, on one keep-alive
connection:
- `text`: hybrid searches (the default bridge fusion) of distinct texts, each a sample question with a word
  appended: the server embeds each one (e5 for the dense side, the companion model for the bridge);
- `vector`: dense searches by given 384-d vectors, distinct (a real query embedding with a little noise).
Each workload runs one by one (`POST /search`, N requests) and in batches (`POST /search/batch`, N / batch
requests), each on a server started afresh, so that neither finds the other's answers or embeddings in a
cache; `--rounds` repeats the pair, alternating which goes first. The table gives searches/s and the ratio,
the server's CPU time per search each way (user + system of its processes, read from /proc: on a machine
shared with other work, the figure the others disturb least), and checks that both ways returned the same
chunk ids. Asserts nothing.

`--fake-openai-ms N` serves the store with the OpenAI embedder against ragstore's own fake OpenAI server
(`embeddings/fake_openai.py`, in this process), which answers each call after N ms: what a remote embedding
API's round trip costs, the case where embedding a batch's texts in one call saves the most. Its vectors are
derived from each text's hash, so the rankings mean nothing; only the times do. Its 1,536-d vectors make a
batch of 100 vectors larger than the JSON body limit, so run it with `--vector 0`.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from served import ROOT, create_key, load_samples, postgres_schema, serving_process, store_env
from soak_probe import process_stats

PORT = 8731
WORDS = ["요금", "기간", "조건", "price", "limit", "rule", "서울", "plan", "방법", "time"]
console = Console(width=150)


def text_searches(count: int) -> list[dict[str, Any]]:
    """Distinct hybrid searches: the sample questions, each with a word appended (the nth round of words)."""
    lines = (ROOT / "samples" / "questions.jsonl").read_text().splitlines()
    questions = [json.loads(line)["question"] for line in lines]
    return [
        {"query": f"{questions[i % len(questions)]} {WORDS[(i // len(questions)) % len(WORDS)]}", "k": 5}
        for i in range(count)
    ]


def vector_searches(count: int) -> list[dict[str, Any]]:
    """Distinct dense searches near where real questions land: query embeddings with a little noise."""
    if not count:
        return []
    from ragstore.embeddings.local import LocalEmbedder

    texts = ["전세 계약", "환불 기간", "marathon training", "김치 담그는 법", "API rate limit", "지하철 환승"]
    bases = np.asarray(LocalEmbedder().embed(texts, kind="query"), dtype=np.float32)
    rng = np.random.default_rng(7)
    out = []
    for i in range(count):
        vector = bases[i % len(bases)] + rng.normal(0, 0.01, bases.shape[1]).astype(np.float32)
        out.append({"vector": (vector / np.linalg.norm(vector)).tolist(), "k": 5})
    return out


# The bodies are encoded before the clock starts, each way: the load generator shares the two cores, and its
# `json.dumps` of 38,400 floats (a batch of vectors) is not the server's work. Answers are parsed in the timing.
JSON = {"content-type": "application/json"}


def one_by_one(http: httpx.Client, searches: list[dict[str, Any]]) -> tuple[float, list[list[int]]]:
    bodies = [json.dumps(body).encode() for body in searches]
    ids = []
    started = time.perf_counter()
    for body in bodies:
        answer = http.post("/v1/collections/samples/search", content=body, headers=JSON)
        answer.raise_for_status()
        ids.append([hit["chunk_id"] for hit in answer.json()["hits"]])
    return time.perf_counter() - started, ids


def batched(http: httpx.Client, searches: list[dict[str, Any]], size: int) -> tuple[float, list[list[int]]]:
    bodies = [json.dumps({"searches": searches[i : i + size]}).encode() for i in range(0, len(searches), size)]
    ids = []
    started = time.perf_counter()
    for body in bodies:
        answer = http.post("/v1/collections/samples/search/batch", content=body, headers=JSON)
        answer.raise_for_status()
        ids.extend([hit["chunk_id"] for hit in result["hits"]] for result in answer.json()["results"])
    return time.perf_counter() - started, ids


def timed(
    env: dict[str, str], headers: dict[str, str], way: str, searches: list[dict[str, Any]], size: int
) -> tuple[float, float, list[list[int]]]:
    """One workload one way, on a server started for it (nothing cached from another run): wall seconds,
    the server's CPU seconds, and each search's chunk ids."""
    with (
        serving_process(env, PORT) as (base, server),
        httpx.Client(base_url=base, headers=headers, timeout=300) as http,
    ):
        warm = {"query": "워밍업 warm-up", "k": 1}  # the first search builds the term bridge: not timed
        http.post("/v1/collections/samples/search", json=warm).raise_for_status()
        cpu = process_stats(server.pid, None).cpu_s
        took, ids = one_by_one(http, searches) if way == "one by one" else batched(http, searches, size)
        return took, process_stats(server.pid, None).cpu_s - cpu, ids


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database-url", help="PostgreSQL URL (default: SQLite in a temporary folder)")
    parser.add_argument("--text", type=int, default=300, help="text (hybrid) searches")
    parser.add_argument("--vector", type=int, default=300, help="vector (dense) searches")
    parser.add_argument("--batch", type=int, default=100, help="searches per batch (at most 100)")
    parser.add_argument("--rounds", type=int, default=1, help="repeat each pair, alternating which way goes first")
    parser.add_argument("--fake-openai-ms", type=float, help="embed with a fake OpenAI server answering after N ms")
    args = parser.parse_args()
    if args.fake_openai_ms is None:
        run(args)
        return
    from ragstore.embeddings.fake_openai import FakeOpenAI

    with FakeOpenAI(api_key="sk-bench", delay_s=args.fake_openai_ms / 1000) as fake:
        remote = {"RAGSTORE_EMBEDDING_BACKEND": "openai", "OPENAI_API_KEY": "sk-bench", "OPENAI_BASE_URL": fake.url}
        run(args, remote)


def run(args: argparse.Namespace, embedder_env: dict[str, str] | None = None) -> None:
    workloads = {"text (hybrid)": text_searches(args.text), "vector (dense)": vector_searches(args.vector)}
    workloads = {name: searches for name, searches in workloads.items() if searches}
    seconds: dict[tuple[str, str], list[float]] = {}
    cpu: dict[tuple[str, str], list[float]] = {}
    same: dict[str, tuple[int, int]] = {}
    data_dir = Path(tempfile.mkdtemp(prefix="ragstore-batch-"))
    try:
        with postgres_schema(args.database_url) as url:
            env = store_env(data_dir, url, None, keyed=True) | (embedder_env or {})
            load_samples(env)
            headers = create_key(env, "read", "samples")
            for name, searches in workloads.items():
                for turn in range(args.rounds):
                    ways = ["one by one", "batched"] if turn % 2 == 0 else ["batched", "one by one"]
                    found = {}
                    for way in ways:
                        took, spent, found[way] = timed(env, headers, way, searches, args.batch)
                        seconds.setdefault((name, way), []).append(took)
                        cpu.setdefault((name, way), []).append(spent)
                        console.print(
                            f"{name}, {way}: {len(searches) / took:,.1f} searches/s, "
                            f"server CPU {spent * 1000 / len(searches):.2f} ms a search"
                        )
                    agree = sum(a == b for a, b in zip(found["one by one"], found["batched"], strict=True))
                    same[name] = (same.get(name, (0, 0))[0] + agree, same.get(name, (0, 0))[1] + len(searches))
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    report(args, workloads, seconds, cpu, same)


def report(
    args: argparse.Namespace,
    workloads: dict[str, list[dict[str, Any]]],
    seconds: dict[tuple[str, str], list[float]],
    cpu: dict[tuple[str, str], list[float]],
    same: dict[str, tuple[int, int]],
) -> None:
    backend = "PostgreSQL" if args.database_url else "SQLite"
    if args.fake_openai_ms is not None:
        backend += f", fake OpenAI embedder ({args.fake_openai_ms:g} ms a call)"
    table = Table(title=f"{backend}, one server process, batches of {args.batch}, median of {args.rounds} round(s)")
    columns = ("workload", "searches", "one by one /s", "batched /s", "ratio", "CPU ms/search", "CPU ratio", "same ids")
    for col in columns:
        table.add_column(col, justify="left" if col == "workload" else "right")
    totals = {"one by one": 0.0, "batched": 0.0}
    cpu_totals = {"one by one": 0.0, "batched": 0.0}
    for name, searches in workloads.items():
        single = statistics.median(seconds[(name, "one by one")])
        batch = statistics.median(seconds[(name, "batched")])
        totals["one by one"] += single
        totals["batched"] += batch
        cpu_single = statistics.median(cpu[(name, "one by one")])
        cpu_batch = statistics.median(cpu[(name, "batched")])
        cpu_totals["one by one"] += cpu_single
        cpu_totals["batched"] += cpu_batch
        agree, total = same[name]
        table.add_row(
            name,
            str(len(searches)),
            f"{len(searches) / single:,.1f}",
            f"{len(searches) / batch:,.1f}",
            f"{single / batch:.1f}x",
            f"{cpu_single * 1000 / len(searches):.2f} / {cpu_batch * 1000 / len(searches):.2f}",
            f"{cpu_single / cpu_batch:.1f}x",
            f"{agree}/{total}",
        )
    count = sum(len(s) for s in workloads.values())
    table.add_row(
        "all",
        str(count),
        f"{count / totals['one by one']:,.1f}",
        f"{count / totals['batched']:,.1f}",
        f"{totals['one by one'] / totals['batched']:.1f}x",
        f"{cpu_totals['one by one'] * 1000 / count:.2f} / {cpu_totals['batched'] * 1000 / count:.2f}",
        f"{cpu_totals['one by one'] / cpu_totals['batched']:.1f}x",
        "",
    )
    console.print(table)


if __name__ == "__main__":
    main()
