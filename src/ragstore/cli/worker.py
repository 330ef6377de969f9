"""`ragstore worker`: the process that drains the outbox and the job queue.

The loop below is kept as it was in the one-file CLI; it reaches past the facade (the applier, the event
bus, the recovery report) and moves whole to the runtime package, which owns what drives the store over
time. Until then this module and `beyond_facade.py` are the only CLI modules that touch components.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import typer

from ragstore.cli.common import opened_store, print_json, settings

if TYPE_CHECKING:
    from ragstore.config import Settings

__all__ = ["configure_logging", "worker"]


def configure_logging(cfg: Settings) -> None:
    """ragstore's own loggers at RAGSTORE_LOG_LEVEL, everything else at WARNING, one line per record."""
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s [%(process)d] %(message)s")
    logging.getLogger("ragstore").setLevel(cfg.log_level)


def worker(
    once: bool = typer.Option(False, "--once", help="Apply what is due in the outbox and run due jobs, then exit."),
    jobs: bool = typer.Option(True, "--jobs/--no-jobs", help="Run jobs from the job queue as well as the outbox."),
    threads: int | None = typer.Option(
        None, min=1, max=64, help="Jobs run at once (default RAGSTORE_WORKER_JOB_THREADS, 1)."
    ),
) -> None:
    """Drain the outbox and the job queue. Run any number, on any machine: claims are leased, never shared."""
    import signal
    import threading

    from ragstore.sync.job_runner import JobRunner

    cfg = settings()
    configure_logging(cfg)
    with opened_store(start_worker=not once) as store:
        runner = JobRunner(
            store, threads=threads or cfg.worker_concurrency_jobs, poll_interval_s=cfg.sync_poll_interval_s
        )
        if once:
            applied = store.sync_now()
            applied["applied"] += store.recovery.applied_pending  # opening the store applies what is due
            ran = 0
            while jobs and runner.run_one():
                ran += 1
            store.persist()
            print_json({"outbox": applied, "jobs_run": ran, "jobs_failed": runner.failed})
            return
        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        if store.bus is not None:
            store.bus.subscribe(lambda event: runner.wake() if event.get("e") == "jobs" else None)
        if jobs:
            runner.start()
        log = logging.getLogger("ragstore.worker")
        log.info("worker %s ready (outbox%s)", store.applier.owner, " and jobs" if jobs else "")
        while not stop.wait(1.0):
            pass
        runner.stop()
        log.info(
            "worker %s stopping: applied %d outbox operations, replayed %d, ran %d jobs (%d failed)",
            store.applier.owner,
            store.applier.applications,
            store.applier.replays,
            runner.completed,
            runner.failed,
        )
