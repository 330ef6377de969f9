"""Large ingests, and any with `?wait=false`, become jobs: the request is checked and queued at once (202 with
the job id), and the server's own job thread stores the documents in batches, recording progress (documents
and chunks done, the rate, an estimate) that `GET /v1/jobs/{id}` shows.

Before, 33,000 documents ran 292 s inside one request, with no way to see how far they had got, and a
client that timed out could not know what was stored. The job is in `job_queue`, so any `ragstore worker`
may run it too; the server starts its one thread (ingest jobs only) on the first large request, so a server
that never receives one runs no thread.
"""

from __future__ import annotations

import threading
from dataclasses import asdict, replace
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel

from ragstore.errors import InvalidInput
from ragstore.runtime.handlers import HANDLERS
from ragstore.runtime.job_runner import JobRunner
from ragstore.schemas import DocumentInput
from ragstore.service import RagStore
from ragstore.text.hashing import normalize_text
from ragstore.text.loaders import LoadedDocument
from ragstore.valid_text import checked_json, checked_text, without_nul

__all__ = ["IngestJobAccepted", "is_large", "queue_ingest", "stop_ingest_runner"]

KIND = "ingest_documents"
_start_lock = threading.Lock()


class IngestJobAccepted(BaseModel):
    """The answer to a large ingest: where to follow it."""

    collection: str
    job_id: int
    status_url: str
    documents: int


def is_large(store: RagStore, documents: int, body_bytes: int) -> bool:
    settings = store.settings
    return documents > settings.ingest_job_documents or body_bytes > settings.ingest_job_bytes


def queue_ingest(
    app: FastAPI,
    store: RagStore,
    collection: str,
    docs: list[DocumentInput] | None = None,
    *,
    loaded: list[LoadedDocument] | None = None,
) -> IngestJobAccepted:
    """Queue the documents (already validated: `docs` from JSON, or `loaded` from a parsed upload, which
    keeps its MIME type, encoding and source hash) as one job and make sure a thread of this server runs it."""
    store.collections.get(collection)  # an unknown collection is a 404 now, not a dead job later
    payload: dict[str, Any] = {"collection": collection}
    if loaded is not None:
        payload["loaded"] = [_queueable(d) for d in loaded]
        count = len(loaded)
    else:
        for i, doc in enumerate(docs or []):  # the one refusal of the ingest that the model does not make
            if doc.chunks is None and not normalize_text(without_nul(doc.text)):
                raise InvalidInput(f"documents[{i}]: contains no text (give text or chunks)")
        payload["documents"] = [d.model_dump(mode="json", exclude_none=True) for d in docs or []]
        count = len(payload["documents"])
    job_id = store.jobs.enqueue(KIND, payload, max_attempts=3, total=count)
    _runner(app, store).wake()
    return IngestJobAccepted(collection=collection, job_id=job_id, status_url=f"/v1/jobs/{job_id}", documents=count)


def _queueable(doc: LoadedDocument) -> dict[str, Any]:
    """A parsed document as the job payload holds it, refused now (422 naming the field) for what the ingest
    would refuse later: the checks of `Ingestor.prepare`. NUL is dropped, as the ingest drops it (and
    PostgreSQL's JSONB cannot hold it)."""
    checked_text(doc.source_uri, "source_uri")
    text = without_nul(checked_text(doc.text, "text", allow_nul=True))
    title = without_nul(checked_text(doc.title, "title", allow_nul=True))
    checked_text(doc.mime_type, "mime_type")
    checked_json(doc.metadata, "metadata")
    if not normalize_text(text):
        raise InvalidInput(f"{doc.source_uri}: contains no text")
    return asdict(replace(doc, text=text, title=title))


def _runner(app: FastAPI, store: RagStore) -> JobRunner:
    with _start_lock:
        runner: JobRunner | None = getattr(app.state, "ingest_runner", None)
        if runner is None:
            runner = JobRunner(store, threads=1, poll_interval_s=1.0, handlers={KIND: HANDLERS[KIND]})
            runner.start()
            app.state.ingest_runner = runner
        return runner


def stop_ingest_runner(app: FastAPI) -> None:
    """At shutdown: a job cut short keeps its lease until it lapses, then runs again (it is idempotent)."""
    runner: JobRunner | None = getattr(app.state, "ingest_runner", None)
    if runner is not None:
        runner.stop(timeout_s=5.0)
        app.state.ingest_runner = None
