"""usearch's one-thread insert beside a busy Python thread: why a bulk load's SQL writes and index inserts
overlap so badly (issue #22, ingest).

    python bench/index_gil.py                 # 5,000 clustered 384-d vectors
    python bench/index_gil.py --n 20000

usearch 2.26 releases the GIL in `Index.add`, but takes it back for every vector it inserts (its insert
loop checks for signals from the first thread). While another thread runs Python (a bulk load's parsing,
validation and SQL statements), each of those takes waits for the interpreter's switch interval. This times
the same insert alone, then beside a thread that only counts (the worst case), at three switch intervals,
and beside a thread that sleeps between short bursts (closer to a load that also waits on SQLite). Prints a
table; no assertion.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from collections.abc import Callable

import numpy as np
from rich.console import Console
from rich.table import Table

from core import dataset
from index_threads import ragstore_index


def insert(data: np.ndarray) -> float:
    """Seconds for one-thread inserts, as the embedded index does them (ragstore's parameters)."""
    index = ragstore_index(data.shape[1])
    started = time.perf_counter()
    for s in range(0, len(data), 1000):
        index.add(np.arange(s, min(s + 1000, len(data)), dtype=np.uint64), data[s : s + 1000], threads=1)
    return time.perf_counter() - started


def beside(work: Callable[[threading.Event], None], data: np.ndarray, switch_s: float) -> float:
    before = sys.getswitchinterval()
    sys.setswitchinterval(switch_s)
    stop = threading.Event()
    other = threading.Thread(target=work, args=(stop,))
    other.start()
    try:
        return insert(data)
    finally:
        stop.set()
        other.join()
        sys.setswitchinterval(before)


def counting(stop: threading.Event) -> None:
    n = 0
    while not stop.is_set():
        n += 1


def bursts(stop: threading.Event) -> None:
    """1 ms of Python, then 1 ms asleep (as a thread waiting on SQLite or a socket half the time)."""
    while not stop.is_set():
        until = time.perf_counter() + 0.001
        while time.perf_counter() < until:
            pass
        time.sleep(0.001)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=5000)
    args = parser.parse_args()
    data, _, _ = dataset(args.n, 1)  # bench/core.py's clustered vectors
    alone = min(insert(data), insert(data))
    rows = [("alone", alone)]
    for switch in (0.005, 0.0005, 0.05):
        rows.append((f"beside a counting thread, switch interval {switch * 1000:g} ms", beside(counting, data, switch)))
    rows.append(("beside 1 ms bursts of Python, 5 ms switch interval", beside(bursts, data, 0.005)))
    table = Table("one-thread insert", "seconds", "vectors/s", "vs alone", title=f"{args.n:,} vectors")
    for name, seconds in rows:
        table.add_row(name, f"{seconds:.2f}", f"{args.n / seconds:,.0f}", f"{alone / seconds:.2f}x")
    Console().print(table)


if __name__ == "__main__":
    main()
