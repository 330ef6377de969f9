"""`ragstore worker`: the process that drains the outbox and the job queue (its loop: runtime/worker.py)."""

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
    from ragstore.runtime.worker import run_once, run_until_stopped

    cfg = settings()
    configure_logging(cfg)
    threads = threads or cfg.worker_concurrency_jobs
    with opened_store(start_worker=not once) as store:
        if once:
            done = run_once(store, threads=threads, poll_interval_s=cfg.sync_poll_interval_s, jobs=jobs)
            print_json({"outbox": done.outbox.model_dump(), "jobs_run": done.jobs_run, "jobs_failed": done.jobs_failed})
            return
        run_until_stopped(store, threads=threads, poll_interval_s=cfg.sync_poll_interval_s, jobs=jobs)
