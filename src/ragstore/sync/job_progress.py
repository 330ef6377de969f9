"""A job's typed progress, read from what the queue holds: its state, its last error and its `result`.

The runner records an ingest's progress in `result["progress"]` while it runs (the handler's `JobProgress`
beside the older done/total), and the finished handler's result keeps the final one; older jobs and other
kinds have only done/total, or nothing. Whatever is there, the reader gets one shape.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from ragstore.schemas import JobProgress, JobProgressState

__all__ = ["progress_of"]

_STATES: dict[str, JobProgressState] = {"queued": "queued", "leased": "running", "done": "done", "dead": "failed"}


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def progress_of(state: str, last_error: str | None, result: dict[str, Any] | None) -> JobProgress:
    """The progress of a job in queue state `state` (queued, leased, done, dead)."""
    shown = _STATES.get(state, "queued")
    recorded = result.get("progress") if isinstance(result, dict) else None
    progress: JobProgress | None = None
    if isinstance(recorded, dict) and "documents_total" in recorded:
        try:
            progress = JobProgress.model_validate({**recorded, "state": shown})
        except ValidationError:
            progress = None
    if progress is None:
        source = recorded if isinstance(recorded, dict) else result if isinstance(result, dict) else {}
        progress = JobProgress(
            state=shown, documents_done=_count(source.get("done")), documents_total=_count(source.get("total"))
        )
    if shown != "running":  # a rate and an estimate only mean something while a worker runs it
        progress.chunks_per_s = progress.chunks_per_s if shown == "done" else None
        progress.eta_s = 0.0 if shown == "done" else None
    progress.error = None if shown == "done" else last_error
    return progress
