"""`ragstore worker`: the process that drains the outbox and the job queue (its loop: runtime/worker.py)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import typer

from ragstore.cli.common import EXIT_BAD_INPUT, fail, opened_store, print_json, settings

if TYPE_CHECKING:
    from ragstore.config import Settings
    from ragstore.runtime.worker_metrics import WorkerMetricsServer
    from ragstore.service import RagStore

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
    metrics_port: int | None = typer.Option(
        None,
        "--metrics-port",
        min=1,
        max=65535,
        envvar="RAGSTORE_WORKER_METRICS_PORT",
        help="Serve this worker's own metrics at GET /metrics on this port (a key of the metrics role).",
    ),
    metrics_host: str = typer.Option(
        "127.0.0.1",
        "--metrics-host",
        envvar="RAGSTORE_WORKER_METRICS_HOST",
        help="The address the metrics port listens on (0.0.0.0 inside a container's private network).",
    ),
) -> None:
    """Drain the outbox and the job queue. Run any number, on any machine: claims are leased, never shared."""
    from ragstore.runtime.worker import run_once, run_until_stopped

    cfg = settings()
    configure_logging(cfg)
    threads = threads or cfg.worker_concurrency_jobs
    if once and metrics_port is not None:
        fail("--metrics-port serves a running worker's counts; --once exits before a scrape", EXIT_BAD_INPUT)
    with opened_store(start_worker=not once) as store:
        if once:
            done = run_once(store, threads=threads, poll_interval_s=cfg.sync_poll_interval_s, jobs=jobs)
            print_json({"outbox": done.outbox.model_dump(), "jobs_run": done.jobs_run, "jobs_failed": done.jobs_failed})
            return
        metrics = None if metrics_port is None else _serve_metrics(store, metrics_host, metrics_port)
        try:
            run_until_stopped(store, threads=threads, poll_interval_s=cfg.sync_poll_interval_s, jobs=jobs)
        finally:
            if metrics is not None:
                metrics.stop()


def _serve_metrics(store: RagStore, host: str, port: int) -> WorkerMetricsServer:
    from ragstore.runtime.worker_metrics import WorkerMetricsServer

    try:
        return WorkerMetricsServer(store, host, port).start()
    except OSError as exc:  # the port is taken, or the address is not this machine's
        fail(f"cannot serve metrics on {host}:{port}: {exc.strerror or exc}", EXIT_BAD_INPUT)
