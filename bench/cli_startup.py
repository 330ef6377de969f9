"""How long a CLI command takes before it does anything: `ragstore --help`, `config show`, `collections list`.

The floor is a bare interpreter (`python -c pass`); the peer is Chroma's own CLI (`chroma --help`), which a
user of a vector store also starts from a shell. Each command runs `--runs` times, interleaved, in a fresh
process; wall time and CPU time (user + system, steadier on a shared machine) are averaged. `collections
list` runs against a store holding the bundled sample corpus (ingested once, in a temporary folder).

    python bench/cli_startup.py [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def timed(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall s, CPU s) of one run, the CPU time from the child's own resource usage."""
    before = os.times()
    started = time.perf_counter()
    subprocess.run(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    wall = time.perf_counter() - started
    after = os.times()
    return wall, (after.children_user - before.children_user) + (after.children_system - before.children_system)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    data = Path(tempfile.mkdtemp(prefix="ragstore-cli-bench-"))
    env = {**os.environ, "RAGSTORE_DATA_DIR": str(data / "data")}
    ragstore = str(BIN / "ragstore")
    try:
        subprocess.run([ragstore, "init"], env=env, check=True, capture_output=True)
        subprocess.run(
            [ragstore, "ingest", str(ROOT / "samples" / "corpus"), "-c", "samples"],
            env=env,
            check=True,
            capture_output=True,
        )
        commands = {
            "python -c pass (floor)": [sys.executable, "-c", "pass"],
            "ragstore --help": [ragstore, "--help"],
            "ragstore config show": [ragstore, "config", "show"],
            "ragstore collections list": [ragstore, "collections", "list"],
            "ragstore index status (opens the index)": [ragstore, "index", "status"],
        }
        if shutil.which("chroma", path=str(BIN)):
            commands["chroma --help (peer)"] = [str(BIN / "chroma"), "--help"]
        results: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
        for _ in range(args.runs):
            for name, command in commands.items():
                results[name].append(timed(command, env))
    finally:
        shutil.rmtree(data, ignore_errors=True)
    floor_cpu = sum(c for _, c in results["python -c pass (floor)"]) / args.runs
    print(f"| command ({args.runs} runs each, interleaved) | wall s | CPU s | CPU vs floor |")
    print("|---|---|---|---|")
    for name, runs in results.items():
        wall = sum(w for w, _ in runs) / len(runs)
        cpu = sum(c for _, c in runs) / len(runs)
        print(f"| {name} | {wall:.2f} | {cpu:.2f} | {cpu / floor_cpu:.1f}x |")


if __name__ == "__main__":
    main()
