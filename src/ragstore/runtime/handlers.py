"""What a job in `job_queue` does, by kind. A handler gets the store and the payload and returns a result.

Handlers must be safe to run twice: a worker that dies after finishing a job's work but before recording
it leaves the job to be run again when its lease lapses.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from ragstore.documents.files import sync_roots
from ragstore.errors import InvalidInput
from ragstore.runtime.ingest_progress import IngestJobTracker, count_chunks
from ragstore.schemas import IngestOutcome, JobProgress
from ragstore.text.loaders import LoadedDocument

if TYPE_CHECKING:
    from ragstore.service import RagStore

__all__ = ["HANDLERS", "INGEST_JOB_BATCH", "PROGRESS_INTERVAL_S", "Handler", "Progress"]


class Progress(Protocol):
    """A handler's third argument: how far it has got (done, total), optionally with the typed detail that
    `GET /v1/jobs/{id}` shows; the runner records it on the job."""

    def __call__(self, done: int, total: int, detail: JobProgress | None = None) -> None: ...


Handler = Callable[["RagStore", dict[str, Any], Progress], dict[str, Any]]
# Documents stored per transaction by an ingest job: a progress step, and a retry after a crash redoes at
# most this many (the rest are found unchanged by their content hash).
INGEST_JOB_BATCH = 500
# At most one progress write per this many seconds (of the store's clock) between batches.
PROGRESS_INTERVAL_S = 1.0


def _collection(payload: dict[str, Any]) -> str:
    name = payload.get("collection")
    if not isinstance(name, str) or not name:
        raise InvalidInput("the job payload needs a collection name")
    return name


def _loaded(raw: dict[str, Any]) -> LoadedDocument:
    """An uploaded file's document as the API parsed it (`loaded` payloads keep its MIME type, encoding and
    source hash, which a `DocumentInput` would lose)."""
    try:
        return LoadedDocument(**raw)
    except TypeError as exc:
        raise InvalidInput(f"the job payload holds a document that is not a loaded document: {exc}") from exc


def ingest_documents(store: RagStore, payload: dict[str, Any], progress: Progress) -> dict[str, Any]:
    """Store the documents of the payload (`documents`: DocumentInput objects, or `loaded`: an upload the API
    parsed) in batches, each one the same call as a synchronous ingest (the outbox applied before the batch
    returns), recording documents and chunks done, the rate and an estimate as it goes.

    Re-running it is harmless: a document already stored is found unchanged by its content hash, so a job
    taken over after a crash stores nothing twice and finishes what was left.
    """
    loaded = payload.get("loaded")
    documents = loaded if loaded is not None else payload.get("documents")
    if not isinstance(documents, list) or not all(isinstance(d, dict) for d in documents):
        raise InvalidInput("the job payload needs a list of documents")
    collection = _collection(payload)
    keep_duplicates = bool(payload.get("keep_duplicates", False))
    ingestor = store.documents.ingestor
    total = len(documents)
    tracker = IngestJobTracker(progress, store.clock, total, 0, interval_s=PROGRESS_INTERVAL_S)
    tracker.report(force=True)
    sizes = [count_chunks(d, max_tokens=ingestor.max_tokens, overlap_tokens=ingestor.overlap_tokens) for d in documents]
    tracker.chunks_total = sum(sizes)
    tracker.report(force=True)
    statuses: list[str] = []
    document_ids: list[int | None] = []
    for start in range(0, total, INGEST_JOB_BATCH):
        part = documents[start : start + INGEST_JOB_BATCH]
        tracker.begin_batch(sum(sizes[start : start + INGEST_JOB_BATCH]))
        outcomes: list[IngestOutcome]
        if loaded is not None:
            outcomes = store.documents.add_loaded(
                collection, [_loaded(d) for d in part], on_chunks=tracker.on_chunks, keep_duplicates=keep_duplicates
            )
        else:
            outcomes = store.documents.add(
                collection, part, on_chunks=tracker.on_chunks, keep_duplicates=keep_duplicates
            )
        statuses += [o.status for o in outcomes]
        document_ids += [o.document_id for o in outcomes]
        tracker.end_batch(outcomes)
    final = tracker.snapshot("done")
    counts = {s: statuses.count(s) for s in ("added", "replaced", "unchanged")}
    return {
        "done": total,
        "total": total,
        **counts,
        "statuses": statuses,
        "document_ids": document_ids,
        "progress": final.model_dump(mode="json"),
    }


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
        # A sync asked over HTTP reads only under RAGSTORE_SYNC_ROOTS, as they are when it runs.
        confine_to=sync_roots(store.settings.sync_roots) if payload.get("confined") else (),
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
