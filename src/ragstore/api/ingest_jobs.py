"""Large ingests, and any with `?wait=false`, become jobs: the request is checked and queued at once (202 with
the job id), and the server's own job thread stores the documents in batches, recording progress (documents
and chunks done, the rate, an estimate) that `GET /v1/jobs/{id}` shows.

Before, 33,000 documents ran 292 s inside one request, with no way to see how far they had got, and a
client that timed out could not know what was stored. The job is in `job_queue`, so any `ragstore worker`
may run it too; the server starts its one thread (ingest jobs only) on the first large request, so a server
that never receives one runs no thread.
"""

from __future__ import annotations

from dataclasses import asdict, replace
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel

from ragstore.api.job_threads import runner_for
from ragstore.errors import InvalidInput
from ragstore.schemas import DocumentInput
from ragstore.service import RagStore
from ragstore.text.hashing import normalize_text
from ragstore.text.loaders import LoadedDocument
from ragstore.valid_text import checked_json, checked_text, without_nul

__all__ = ["IngestJobAccepted", "is_large", "queue_ingest"]

KIND = "ingest_documents"


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
    keep_duplicates: bool = False,
) -> IngestJobAccepted:
    """Queue the documents (already validated: `docs` from JSON, or `loaded` from a parsed upload, which
    keeps its MIME type, encoding and source hash) as one job and make sure a thread of this server runs it."""
    store.collections.get(collection)  # an unknown collection is a 404 now, not a dead job later
    payload: dict[str, Any] = {"collection": collection, "keep_duplicates": keep_duplicates}
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
    runner_for(app, store, KIND).wake()
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
