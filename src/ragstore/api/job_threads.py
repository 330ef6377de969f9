"""The server's own job threads: one per kind of job it queues over HTTP (large or background ingests,
syncs), started by the first request that queues one, so a server that never receives one runs no thread.

The jobs are in `job_queue`, so any `ragstore worker` may run them too; a thread here only makes sure a lone
server finishes what it accepted. At shutdown a job cut short keeps its lease until it lapses and then runs
again: every kind queued here is idempotent.
"""

from __future__ import annotations

import threading

from fastapi import FastAPI

from ragstore.runtime.handlers import HANDLERS
from ragstore.runtime.job_runner import JobRunner
from ragstore.service import RagStore

__all__ = ["runner_for", "stop_job_runners"]

_start_lock = threading.Lock()


def runner_for(app: FastAPI, store: RagStore, kind: str) -> JobRunner:
    """The running thread of this app for jobs of `kind` (started now if there is none)."""
    with _start_lock:
        runners: dict[str, JobRunner] | None = getattr(app.state, "job_runners", None)
        if runners is None:
            runners = app.state.job_runners = {}
        runner = runners.get(kind)
        if runner is None:
            runner = runners[kind] = JobRunner(store, threads=1, poll_interval_s=1.0, handlers={kind: HANDLERS[kind]})
            runner.start()
        return runner


def stop_job_runners(app: FastAPI) -> None:
    runners: dict[str, JobRunner] = getattr(app.state, "job_runners", None) or {}
    for runner in runners.values():
        runner.stop(timeout_s=5.0)
    app.state.job_runners = {}
