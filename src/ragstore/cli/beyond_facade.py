"""EVERY place a command reaches past the facade into the store's components, and nowhere else.

The facade (`RagStore`) has no call yet for these; until it has, the commands call these functions, so
the day the facade grows them (`store.jobs...` as a sub-facade, a backend-names call) only this module
changes. `cli/worker.py` is the one other module that touches components: its loop moves to the runtime
package whole.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ragstore.service import RagStore

__all__ = ["backend_names", "enqueue_job", "recent_jobs"]


def enqueue_job(store: RagStore, kind: str, payload: dict[str, Any], *, priority: int) -> int:
    """Queue a job and wake the workers listening on the bus (they poll anyway, this only saves the wait)."""
    job_id = store.jobs.enqueue(kind, payload, priority=priority)  # past the facade: the job queue
    if store.bus is not None:  # past the facade: the event bus
        store.bus.publish("jobs")
    return job_id


def recent_jobs(store: RagStore, *, state: str | None, limit: int) -> list[dict[str, Any]]:
    return store.jobs.recent(state=state, limit=limit)  # past the facade: the job queue


def backend_names(store: RagStore) -> tuple[str, str]:
    """The vector and the lexical backend the open store uses."""
    return store.index.name, store.lexical.name  # past the facade: the two indexes
