"""The in-process sync worker: drains the outbox, persists the index, prunes applied operations.

Writers apply their own operation inline (so a document is searchable when its ingest call returns);
the worker is the backstop that retries what failed, with the backoff the applier scheduled.
"""

from __future__ import annotations

import logging
import threading
import time

from ragstore.sync.applier import OutboxApplier
from ragstore.vectors.base import VectorIndex

__all__ = ["SyncWorker"]

log = logging.getLogger(__name__)


class SyncWorker:
    def __init__(
        self, applier: OutboxApplier, index: VectorIndex, *, poll_interval_s: float, persist_interval_s: float
    ) -> None:
        self.applier = applier
        self.index = index
        self.poll_interval_s = poll_interval_s
        self.persist_interval_s = persist_interval_s
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_error: str | None = None
        self.iterations = 0

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="ragstore-sync", daemon=True)
            self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        last_persist = time.monotonic()
        while not self._stop.is_set():
            try:
                self.applier.apply_pending()
                if time.monotonic() - last_persist >= self.persist_interval_s:
                    self.checkpoint()
                    last_persist = time.monotonic()
                self.last_error = None
            except Exception as exc:  # the worker must outlive any one failure
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("sync worker iteration failed")
            self.iterations += 1
            self._wake.wait(self.poll_interval_s)
            self._wake.clear()

    def checkpoint(self) -> None:
        """Persist the index, drop outbox rows it now holds durably, and free claims of dead local processes."""
        with self.applier.lock:
            self.index.persist()
            self.applier.prune_done()
        self.applier.release_dead_leases()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
