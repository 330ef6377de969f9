"""The documents routes as calls and plans, shared by `Documents` and `AsyncDocuments`.

An ingest over HTTP differs from the facade's in one way the client hides: the server turns a large request
(over RAGSTORE_INGEST_JOB_DOCUMENTS documents or RAGSTORE_INGEST_JOB_BYTES bytes) into a job and answers
202. The client sends documents in batches of `BATCH` so a normal call is answered with the outcomes, and
follows the job when the server still queues one, so `add` always returns once the documents are stored.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import httpx
import numpy as np
from pydantic import ValidationError

from ragstore.client.calls import Call, Pause, Plan, nothing, parsed, parsed_list, segment
from ragstore.errors import InvalidInput, OperationFailed, Unavailable
from ragstore.schemas import ChunkVector, DocumentDeletion, DocumentInfo, DocumentInput, IngestOutcome, JobInfo

__all__ = ["BATCH", "add", "delete", "delete_many", "find", "get", "ingest_bytes", "listing", "vectors"]

BATCH = 200  # documents per request: well under the server's default job threshold of 1,000
JOB_POLL_FIRST_S = 0.2
JOB_POLL_MAX_S = 2.0
JOB_WAIT_MAX_S = 3600.0  # a job not finished in an hour is left to its status URL


def _path(collection: str) -> str:
    return f"/v1/collections/{segment(collection)}/documents"


def document_json(raw: DocumentInput | dict[str, Any], position: int) -> dict[str, Any]:
    """A document as the API's JSON, checked first as the facade checks it (InvalidInput naming the field);
    numpy vectors become lists."""
    try:
        doc = raw if isinstance(raw, DocumentInput) else DocumentInput.model_validate(raw)
    except ValidationError as exc:
        problems = [
            f"documents[{position}].{'.'.join(str(p) for p in e['loc'])}: {e['msg'].removeprefix('Value error, ')}"
            for e in exc.errors(include_input=False)
        ]
        raise InvalidInput("; ".join(problems), details={"problems": problems}) from None
    body: dict[str, Any] = {"text": doc.text, "title": doc.title, "metadata": doc.metadata}
    if doc.source_uri is not None:
        body["source_uri"] = doc.source_uri
    if doc.chunks is not None:
        body["chunks"] = [
            {"text": c.text} | ({"vector": np.asarray(c.vector, dtype=float).tolist()} if c.vector is not None else {})
            for c in doc.chunks
        ]
    return body


def _answer(response: httpx.Response) -> list[IngestOutcome] | int:
    """The outcomes (201), or the id of the job the server queued them as (202)."""
    body = response.json()
    if response.status_code == 202:
        return int(body["job_id"])
    return [IngestOutcome.model_validate(o) for o in body["documents"]]


def _job(job_id: int) -> Call[JobInfo]:
    return Call("GET", f"/v1/jobs/{job_id}", parsed(JobInfo), idempotent=True)


def follow_job(job_id: int, sources: Sequence[str | None]) -> Plan[list[IngestOutcome]]:
    """Poll the ingest job until it is done, and its outcomes as the job records them (status and document
    id per document; the source where the request named one)."""
    waited, pause = 0.0, JOB_POLL_FIRST_S
    while True:
        job = yield _job(job_id)
        if job.state == "done":
            break
        if job.state == "dead":
            raise OperationFailed(f"ingest job {job_id} failed: {job.last_error}", details={"job_id": job_id})
        if waited >= JOB_WAIT_MAX_S:
            raise Unavailable(
                f"ingest job {job_id} has not finished after {waited:.0f} s; follow it at /v1/jobs/{job_id}",
                details={"job_id": job_id},
            )
        yield Pause(pause)
        waited += pause
        pause = min(pause * 2, JOB_POLL_MAX_S)
    result = job.result or {}
    statuses, ids = result.get("statuses", []), result.get("document_ids", [])
    return [
        IngestOutcome(
            source_uri=(sources[i] if i < len(sources) else None) or "",
            status=status,
            document_id=ids[i] if i < len(ids) else None,
            index_state="indexed",
        )
        for i, status in enumerate(statuses)
    ]


def add(
    collection: str, documents: Sequence[DocumentInput | dict[str, Any]], *, keep_duplicates: bool
) -> Plan[list[IngestOutcome]]:
    bodies = [document_json(d, i) for i, d in enumerate(documents)]
    if not bodies:
        raise InvalidInput("no documents to add")
    params = {"wait": True, "keep_duplicates": True if keep_duplicates else None}
    outcomes: list[IngestOutcome] = []
    for start in range(0, len(bodies), BATCH):
        part = bodies[start : start + BATCH]
        answer = yield Call("POST", _path(collection), _answer, params=params, json=part)
        if isinstance(answer, int):
            answer = yield from follow_job(answer, [b.get("source_uri") for b in part])
        outcomes.extend(answer)
    return outcomes


def ingest_bytes(
    collection: str,
    data: bytes,
    filename: str,
    content_type: str | None,
    metadata: dict[str, Any] | None,
) -> Plan[list[IngestOutcome]]:
    """One file uploaded as multipart (the server parses it: a .jsonl file may hold several documents)."""
    form = {"metadata": json.dumps(metadata)} if metadata else {}
    file = (filename, data, content_type or "application/octet-stream")
    answer: list[IngestOutcome] | int = yield Call(
        "POST", _path(collection), _answer, params={"wait": True}, files={"file": file}, data=form
    )
    if isinstance(answer, int):
        return (yield from follow_job(answer, []))
    return answer


def listing(collection: str, limit: int, offset: int) -> Call[list[DocumentInfo]]:
    params = {"limit": limit, "offset": offset}
    return Call("GET", _path(collection), parsed_list(DocumentInfo), params=params, idempotent=True)


def get(collection: str, document_id: int, with_chunks: bool) -> Call[DocumentInfo]:
    params = {"chunks": True} if with_chunks else None
    path = f"{_path(collection)}/{segment(document_id)}"
    return Call("GET", path, parsed(DocumentInfo), params=params, idempotent=True)


def delete(collection: str, document_id: int) -> Call[None]:
    return Call("DELETE", f"{_path(collection)}/{segment(document_id)}", nothing, idempotent=True)


def _selection(sources: Sequence[str] | None, filter: dict[str, Any] | None) -> dict[str, Any]:
    """Only what the caller named: the server then refuses an empty selection exactly as the facade does."""
    body: dict[str, Any] = {}
    if sources is not None:
        body["sources"] = list(sources)
    if filter is not None:
        body["filter"] = filter
    return body


def find(
    collection: str,
    sources: Sequence[str] | None,
    filter: dict[str, Any] | None,
    limit: int,
    offset: int,
    with_chunks: bool,
) -> Call[list[DocumentInfo]]:
    body = _selection(sources, filter) | {"limit": limit, "offset": offset, "with_chunks": with_chunks}
    return Call("POST", f"{_path(collection)}/find", parsed_list(DocumentInfo), json=body, idempotent=True)


def delete_many(
    collection: str, sources: Sequence[str] | None, filter: dict[str, Any] | None, everything: bool
) -> Call[DocumentDeletion]:
    # Repeating it deletes nothing more (what matched is gone), so a lost answer may be asked again; the
    # repeat's answer then counts only what it deleted itself.
    body = _selection(sources, filter) | ({"everything": True} if everything else {})
    return Call("POST", f"{_path(collection)}/delete", parsed(DocumentDeletion), json=body, idempotent=True)


def vectors(collection: str, chunk_ids: Sequence[int]) -> Call[list[ChunkVector]]:
    path = f"/v1/collections/{segment(collection)}/chunks/vectors"
    body = {"chunk_ids": list(chunk_ids)}
    return Call("POST", path, parsed_list(ChunkVector), json=body, idempotent=True)
