"""The worker process: drains the outbox and the job queue of an open store until told to stop.

Any number may run, on any machine: outbox operations and jobs are claimed under leases, never shared. It
sits in the runtime package because it holds an open store over time and reaches into its components (the
applier's counters, the event bus), which no face should.
"""

from __future__ import annotations

import logging
import signal
import threading
from dataclasses import dataclass

from ragstore.runtime.job_runner import JobRunner
from ragstore.schemas import SyncReport
from ragstore.service import RagStore

__all__ = ["WorkerPass", "run_once", "run_until_stopped"]

log = logging.getLogger("ragstore.worker")


@dataclass(frozen=True, slots=True)
class WorkerPass:
    """What `ragstore worker --once` did."""

    outbox: SyncReport
    jobs_run: int
    jobs_failed: int


def run_once(store: RagStore, *, threads: int, poll_interval_s: float, jobs: bool = True) -> WorkerPass:
    """Apply what is due in the outbox, run every due job, persist the index, and return."""
    runner = JobRunner(store, threads=threads, poll_interval_s=poll_interval_s)
    applied = store.index.sync_now()
    applied.applied += store.recovery.applied_pending  # opening the store applies what is due
    ran = 0
    while jobs and runner.run_one():
        ran += 1
    store.index.persist()
    return WorkerPass(outbox=applied, jobs_run=ran, jobs_failed=runner.failed)


def run_until_stopped(
    store: RagStore, *, threads: int, poll_interval_s: float, jobs: bool = True, stop: threading.Event | None = None
) -> None:
    """Run until SIGTERM or SIGINT (or `stop` is set); the store's own sync worker drains the outbox meanwhile."""
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
    runner = JobRunner(store, threads=threads, poll_interval_s=poll_interval_s)
    bus, applier = store.components.bus, store.components.applier
    if bus is not None:
        bus.subscribe(lambda event: runner.wake() if event.get("e") == "jobs" else None)
    if jobs:
        runner.start()
    log.info("worker %s ready (outbox%s)", applier.owner, " and jobs" if jobs else "")
    while not stop.wait(1.0):
        pass
    runner.stop()
    log.info(
        "worker %s stopping: applied %d outbox operations, replayed %d, ran %d jobs (%d failed)",
        applier.owner,
        applier.applications,
        applier.replays,
        runner.completed,
        runner.failed,
    )
