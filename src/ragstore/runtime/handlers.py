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

__all__ = ["HANDLERS", "INGEST_JOB_BATCH", "Handler", "Progress"]

# A handler's third argument reports progress (done, total); the runner records it on the job, so
# `GET /v1/jobs/{id}` shows how far a long job has got.
Progress = Callable[[int, int], None]
Handler = Callable[["RagStore", dict[str, Any], Progress], dict[str, Any]]
# Documents stored per transaction by an ingest job: a progress step, and a retry after a crash redoes at
# most this many (the rest are found unchanged by their content hash).
INGEST_JOB_BATCH = 500


def _collection(payload: dict[str, Any]) -> str:
    name = payload.get("collection")
    if not isinstance(name, str) or not name:
        raise InvalidInput("the job payload needs a collection name")
    return name


def ingest_documents(store: RagStore, payload: dict[str, Any], progress: Progress) -> dict[str, Any]:
    """Store documents given in the payload, in batches with progress (re-running it is harmless: content
    hashes deduplicate)."""
    documents = payload.get("documents")
    if not isinstance(documents, list):
        raise InvalidInput("the job payload needs a list of documents")
    collection = _collection(payload)
    statuses: list[str] = []
    document_ids: list[int | None] = []
    progress(0, len(documents))
    for start in range(0, len(documents), INGEST_JOB_BATCH):
        outcomes = store.documents.add(collection, documents[start : start + INGEST_JOB_BATCH])
        statuses += [o.status for o in outcomes]
        document_ids += [o.document_id for o in outcomes]
        progress(min(start + INGEST_JOB_BATCH, len(documents)), len(documents))
    counts = {s: statuses.count(s) for s in ("added", "replaced", "unchanged")}
    total = len(documents)
    return {"done": total, "total": total, **counts, "statuses": statuses, "document_ids": document_ids}


def ingest_paths(store: RagStore, payload: dict[str, Any], progress: Progress) -> dict[str, Any]:
    """Ingest files and folders that the worker can read."""
    paths = payload.get("paths")
    if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
        raise InvalidInput("the job payload needs a list of paths")
    report = store.documents.ingest_paths(
        _collection(payload), paths, progress=lambda p: progress(p.files_done, p.files_total)
    )
    return dict(report.summary)


def sync_paths(store: RagStore, payload: dict[str, Any], progress: Progress) -> dict[str, Any]:
    """Make a collection mirror folders the worker can read (documents/files.py); safe to run twice: a second
    run finds the files unchanged by their hash and the deleted documents gone."""
    paths = payload.get("paths")
    if not isinstance(paths, list) or not paths or not all(isinstance(p, str) for p in paths):
        raise InvalidInput("the job payload needs a list of paths")
    root, encoding = payload.get("root"), payload.get("encoding")
    if not isinstance(root, str | None) or not isinstance(encoding, str | None):
        raise InvalidInput("the job payload's root and encoding must be strings")
    report = store.documents.sync_paths(
        _collection(payload),
        paths,
        root=root,
        dry_run=bool(payload.get("dry_run", False)),
        keep_duplicates=bool(payload.get("keep_duplicates", False)),
        encoding=encoding,
        progress=lambda p: progress(p.files_done, p.files_total),
    )
    return {**report.summary, "dry_run": report.dry_run}


def rebuild_index(store: RagStore, payload: dict[str, Any], _progress: Progress) -> dict[str, Any]:
    """Rebuild one collection's index replica (or all) from SQL in the worker's own process."""
    name = payload.get("collection")
    return {"rebuilt": store.index.rebuild(name if isinstance(name, str) else None).vectors}


def checkpoint(store: RagStore, payload: dict[str, Any], _progress: Progress) -> dict[str, Any]:
    """Persist the worker's index replica and prune the outbox rows every replica is past."""
    store.index.persist()
    return {"outbox": store.index.outbox_counts().model_dump()}


HANDLERS: dict[str, Handler] = {
    "ingest_documents": ingest_documents,
    "ingest_paths": ingest_paths,
    "sync_paths": sync_paths,
    "rebuild_index": rebuild_index,
    "checkpoint": checkpoint,
}
