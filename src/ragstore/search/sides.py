"""Running the dense half of a hybrid search while the caller prepares the lexical half.

A bridged hybrid search first expands its lexical query (search/term_bridge.py: the companion model encodes
the query, the vocabulary is searched) and only then can rank lexically; the dense half needs none of that.
Run on a second thread meanwhile, it costs nothing the caller waits for: the encoder's matrix products, the
vector index's search and SQLite's reads all release the GIL. A few long-lived threads serve every store of
the process (the raw SQLite connection a search uses is per thread, so threads made per search would each
open one). Only a search that runs alone in its process uses one: concurrent searches already keep the
cores busy, and a side thread among them only adds hand-offs (measured at 50 clients: 35-37 text searches/s
with side threads against 41 without, `bench/load.py --mix text=1`); then, and when both threads are busy,
the caller runs the side itself, as before.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import TypeVar

__all__ = ["SIDE_THREADS", "run_aside", "searching"]

T = TypeVar("T")
SIDE_THREADS = 2

_pool = ThreadPoolExecutor(max_workers=SIDE_THREADS, thread_name_prefix="ragstore-search-side")
_free = threading.BoundedSemaphore(SIDE_THREADS)
_running = 0  # searches in progress in this process (`searching`)
_running_lock = threading.Lock()


@contextmanager
def searching() -> Iterator[None]:
    """Counts a search while it runs, so that `run_aside` knows whether it runs alone."""
    global _running
    with _running_lock:
        _running += 1
    try:
        yield
    finally:
        with _running_lock:
            _running -= 1


def run_aside(work: Callable[[], T]) -> Future[T] | None:
    """`work` started on a side thread, or None when other searches run too or every side thread is busy
    (the caller runs it)."""
    if _running > 1 or not _free.acquire(blocking=False):
        return None
    try:
        future = _pool.submit(work)
    except RuntimeError:  # the interpreter is shutting down
        _free.release()
        return None
    future.add_done_callback(lambda _: _free.release())
    return future
