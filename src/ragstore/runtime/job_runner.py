"""Runs jobs from `job_queue` in a worker process: claim under a lease, renew it while the job runs,
record the result or the failure (which the queue retries with backoff, then dead-letters).
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from ragstore.errors import Conflict, InvalidInput, NotFound, RagstoreError
from ragstore.runtime.handlers import HANDLERS, Handler, Progress
from ragstore.schemas import JobProgress
from ragstore.sync.jobs import ClaimedJob, JobQueue
from ragstore.sync.outbox import process_owner

if TYPE_CHECKING:
    from ragstore.service import RagStore

__all__ = ["JobRunner"]

log = logging.getLogger(__name__)


class JobRunner:
    def __init__(
        self,
        store: RagStore,
        *,
        threads: int = 1,
        poll_interval_s: float = 1.0,
        handlers: dict[str, Handler] | None = None,
    ) -> None:
        self.store = store
        self.queue: JobQueue = store.components.jobs
        self.handlers = handlers or HANDLERS
        self.threads = threads
        self.poll_interval_s = poll_interval_s
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._workers: list[threading.Thread] = []
        self.completed = 0
        self.failed = 0

    @property
    def owner(self) -> str:
        return f"{process_owner()}:{threading.get_ident()}"

    def start(self) -> None:
        for n in range(self.threads):
            thread = threading.Thread(target=self._loop, name=f"ragstore-jobs-{n}", daemon=True)
            thread.start()
            self._workers.append(thread)

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout_s: float = 30.0) -> None:
        self._stop.set()
        self._wake.set()
        for thread in self._workers:
            thread.join(timeout_s)
        self._workers.clear()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                ran = self.run_one()
            except Exception:
                log.exception("job loop iteration failed")
                ran = False
            if not ran:
                self._wake.wait(self.poll_interval_s)
                self._wake.clear()

    def run_one(self) -> bool:
        """Claim and run one due job; False when none was due."""
        owner = self.owner
        job = self.queue.claim(owner, kinds=list(self.handlers))
        if job is None:
            return False
        renew = threading.Event()
        keeper = threading.Thread(target=self._keep_lease, args=(job, renew), daemon=True)
        keeper.start()
        try:
            result = self.handlers[job.kind](self.store, job.payload, self._progress_of(job))
        except Exception as exc:
            renew.set()
            keeper.join()
            error = exc.message if isinstance(exc, RagstoreError) else f"{type(exc).__name__}: {exc}"
            # Input the work refuses, or a collection gone since: another attempt would fail the same way.
            state = self.queue.fail(job.id, owner, error, permanent=isinstance(exc, (InvalidInput, NotFound)))
            self.failed += 1
            log.warning("job %d (%s) failed on attempt %d, now %s: %s", job.id, job.kind, job.attempts, state, error)
            return True
        renew.set()
        keeper.join()
        try:
            self.queue.complete(job.id, owner, result)
        except Conflict as exc:
            log.warning("job %d finished after its lease was taken over: %s", job.id, exc.message)
            return True
        self.completed += 1
        log.info("job %d (%s) done", job.id, job.kind)
        return True

    def _progress_of(self, job: ClaimedJob) -> Progress:
        def report(done: int, total: int, detail: JobProgress | None = None) -> None:
            extra = None if detail is None else detail.model_dump(mode="json")
            try:
                self.queue.progress(job.id, job.lease_owner, done, total, detail=extra)
            except RagstoreError as exc:  # progress is for the reader; the job's work goes on
                log.warning("could not record the progress of job %d: %s", job.id, exc.message)

        return report

    def _keep_lease(self, job: ClaimedJob, done: threading.Event) -> None:
        """Renew the lease at a third of its length, so a long job is never taken over while it runs."""
        while not done.wait(self.queue.lease_s / 3):
            try:
                self.queue.heartbeat(job.id, job.lease_owner)
            except Exception as exc:
                log.warning("could not renew the lease of job %d: %s", job.id, exc)
