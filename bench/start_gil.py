"""How long a server process's start-up holds the GIL, step by step: what uvicorn's worker ping must outwait.

    python bench/start_gil.py [--data-dir DIR]

`ragstore serve --workers N` runs uvicorn's supervisor, which pings each worker over a pipe and kills one
that does not answer in time. A Python thread of the worker answers, so the answer waits while any call
holds the GIL. This opens a store (the embedded defaults, in DIR or a temporary folder) and runs each step
of `RagStore.warm_up` in this fresh process, beside a thread that wakes every 5 ms and records the longest
wait between two of its wakes: the longest GIL hold of the step, as the ping thread would see it. Prints a
table with each step's seconds, its longest hold, and that hold against `cli/lifecycle.WORKER_HEALTHCHECK_S`
(a busy machine stretches every hold by the number of runnable threads per core). No assertion.
"""

from __future__ import annotations

import argparse
import importlib
import platform
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.table import Table


class GilWatch:
    """A thread that sleeps 5 ms at a time and keeps the longest gap between its wakes."""

    def __init__(self) -> None:
        self.longest = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        last = time.monotonic()
        while not self._stop.is_set():
            time.sleep(0.005)
            now = time.monotonic()
            self.longest = max(self.longest, now - last)
            last = now

    def step(self, run: Callable[[], object]) -> tuple[float, float]:
        """Seconds `run` took and the longest GIL hold seen meanwhile."""
        time.sleep(0.02)  # the watch's own first wake
        self.longest = 0.0
        started = time.monotonic()
        run()
        took = time.monotonic() - started
        time.sleep(0.02)  # the wake that ends the last hold
        return took, self.longest

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, help="a store to open (default: a new one in a temporary folder)")
    args = parser.parse_args()
    watch = GilWatch()
    rows: list[tuple[str, float, float]] = []

    def timed(name: str, run: Callable[[], object]) -> None:
        took, held = watch.step(run)
        rows.append((name, took, held))

    # Timed as the first import of ragstore in this process; the names are then taken from the loaded modules.
    timed("import ragstore.service", lambda: importlib.import_module("ragstore.service"))
    from ragstore.cli.lifecycle import WORKER_HEALTHCHECK_S
    from ragstore.config import Settings
    from ragstore.service import RagStore

    with tempfile.TemporaryDirectory(prefix="ragstore-start-gil-") as tmp:
        opened: list[RagStore] = []
        timed("RagStore.open", lambda: opened.append(RagStore.open(Settings(data_dir=args.data_dir or Path(tmp)))))
        with opened[0] as store:  # the steps of RagStore.warm_up, one by one
            components = store.components
            timed("embedder warm-up", getattr(components.embedder, "warm_up", lambda: None))
            analyzer = components.lexical_indexer.target()
            timed("kiwi: load and first analysis", lambda: analyzer.terms("warm up 준비"))
            timed("kiwi: second analysis", lambda: analyzer.terms("서울 지하철 환승 안내"))
            bridge = components.term_bridge
            if bridge is not None:
                timed("companion model", lambda: bridge.companion.embed_terms(["warm up", "준비"]))
    watch.stop()

    limit = WORKER_HEALTHCHECK_S
    table = Table(
        title=f"start-up GIL holds ({platform.processor() or platform.machine()}, Python {platform.python_version()})"
    )
    for col in ("step", "seconds", "longest GIL hold s", f"hold / ping timeout ({limit:.0f} s)"):
        table.add_column(col, justify="right")
    for name, took, held in rows:
        table.add_row(name, f"{took:.2f}", f"{held:.3f}", f"{held / limit:.3f}")
    Console().print(table)
    print(f"uvicorn's own default ping timeout is 5 s: the longest hold is {max(h for _, _, h in rows) / 5:.2f}x of it")


if __name__ == "__main__":
    main()
