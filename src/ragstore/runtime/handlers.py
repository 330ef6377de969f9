"""What a job in `job_queue` does, by kind. A handler gets the store and the payload and returns a result.

Handlers must be safe to run twice: a worker that dies after finishing a job's work but before recording
it leaves the job to be run again when its lease lapses.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ragstore.errors import InvalidInput

if TYPE_CHECKING:
    from ragstore.service import RagStore

__all__ = ["HANDLERS", "Handler"]

Handler = Callable[["RagStore", dict[str, Any]], dict[str, Any]]


def _collection(payload: dict[str, Any]) -> str:
    name = payload.get("collection")
    if not isinstance(name, str) or not name:
        raise InvalidInput("the job payload needs a collection name")
    return name


def ingest_documents(store: RagStore, payload: dict[str, Any]) -> dict[str, Any]:
    """Store documents given in the payload (re-running it is harmless: content hashes deduplicate)."""
    documents = payload.get("documents")
    if not isinstance(documents, list):
        raise InvalidInput("the job payload needs a list of documents")
    outcomes = store.documents.add(_collection(payload), documents)
    return {"statuses": [o.status for o in outcomes], "document_ids": [o.document_id for o in outcomes]}


def ingest_paths(store: RagStore, payload: dict[str, Any]) -> dict[str, Any]:
    """Ingest files and folders that the worker can read."""
    paths = payload.get("paths")
    if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
        raise InvalidInput("the job payload needs a list of paths")
    report = store.documents.ingest_paths(_collection(payload), paths)
    return dict(report.summary)


def rebuild_index(store: RagStore, payload: dict[str, Any]) -> dict[str, Any]:
    """Rebuild one collection's index replica (or all) from SQL in the worker's own process."""
    name = payload.get("collection")
    return {"rebuilt": store.index.rebuild(name if isinstance(name, str) else None).vectors}


def checkpoint(store: RagStore, payload: dict[str, Any]) -> dict[str, Any]:
    """Persist the worker's index replica and prune the outbox rows every replica is past."""
    store.index.persist()
    return {"outbox": store.index.outbox_counts().model_dump()}


HANDLERS: dict[str, Handler] = {
    "ingest_documents": ingest_documents,
    "ingest_paths": ingest_paths,
    "rebuild_index": rebuild_index,
    "checkpoint": checkpoint,
}
