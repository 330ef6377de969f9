"""What the request limits cost the cached search path: this tree against another revision, in one run.

    python bench/request_limits.py                       # against main, 3 rounds of 10 s, 50 clients
    python bench/request_limits.py --baseline 2b8ae16 --rounds 5 --duration 10

Both servers run side by side (`bench/load.py`'s `server`, SQLite, the sample corpus), each importing its
own source tree through PYTHONPATH; the baseline's `src` is exported from git with `git archive`. The
rounds alternate between them (and which goes first alternates too), so a machine that slows down during
the run slows both alike. Each round is `bench/load.py`'s `repeated` mix: one of the 60 sample questions again
and again, answered from the result cache. Prints req/s and p95 per round and the ratio of the medians;
asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--baseline", default="main", help="git revision to compare with (default: main)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per round and server")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--max-requests", type=int, default=40_000)
    args = parser.parse_args()
    trees = {}
    with tempfile.TemporaryDirectory(prefix="ragstore-limits-") as tmp, ExitStack() as stack:
        trees[f"baseline ({args.baseline})"] = exported_src(args.baseline, Path(tmp))
        trees["this tree"] = ROOT / "src"
        bases = {}
        for name, src in trees.items():
            os.environ["PYTHONPATH"] = str(src)  # the server's `ragstore` imports this tree first
            bases[name] = stack.enter_context(server(None, 1, None))
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
