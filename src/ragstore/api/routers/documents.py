"""Documents: upload a file (multipart) or send JSON text on the same path; list, get, delete."""

from __future__ import annotations

import json
from functools import partial
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from ragstore.api.deps import get_store
from ragstore.api.errors import BAD_BODY, BODY_TOO_LARGE, DOWN, INVALID, error_responses
from ragstore.api.ingest_jobs import IngestJobAccepted, is_large, queue_ingest
from ragstore.api.permissions import require
from ragstore.errors import InvalidInput, PayloadTooLarge, UnsupportedMediaType
from ragstore.schemas import DocumentInfo, DocumentInput, IngestOutcome
from ragstore.schemas.core import INT64_MAX
from ragstore.security.principal import Role
from ragstore.service import RagStore
from ragstore.valid_text import ascii_digits

router = APIRouter(prefix="/v1/collections/{name}/documents", tags=["documents"])

UNKNOWN = (404, "The collection does not exist.")
UNKNOWN_DOCUMENT = (404, "The collection or the document does not exist.")

# Multipart framing around the file; the file itself is limited by RAGSTORE_MAX_DOCUMENT_BYTES.
MULTIPART_OVERHEAD = 64 * 1024


class IngestResponse(BaseModel):
    collection: str
    documents: list[IngestOutcome]


def _inlined(schema: dict[str, Any]) -> dict[str, Any]:
    """`schema` with its `$defs` written in place: a schema given in `openapi_extra` is not searched for models,
    so a `#/$defs/...` reference would point nowhere in the OpenAPI document (and fuzzers skip what it names)."""
    defs = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return resolve(defs[ref.removeprefix("#/$defs/")])
            return {k: resolve(v) for k, v in node.items()}
        if isinstance(node, list):
            return [resolve(v) for v in node]
        return node

    inlined: dict[str, Any] = resolve(schema)
    return inlined


DOCUMENT_SCHEMA = _inlined(DocumentInput.model_json_schema())

UPLOAD_DOC: dict[str, Any] = {
    "requestBody": {
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        "metadata": {"type": "string", "description": "a JSON object"},
                        "encoding": {
                            "type": "string",
                            "maxLength": 32,
                            "description": "the text encoding of the file (e.g. cp949); else detected",
                        },
                    },
                    "required": ["file"],
                }
            },
            "application/json": {
                "schema": {
                    "anyOf": [
                        DOCUMENT_SCHEMA,
                        {"type": "array", "items": DOCUMENT_SCHEMA, "minItems": 1, "title": "Documents"},
                    ]
                }
            },
        },
        "required": True,
    }
}


def _document_inputs(items: list[Any]) -> list[DocumentInput]:
    try:
        return [DocumentInput.model_validate(item) for item in items]
    except ValidationError as exc:
        problems = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
        raise InvalidInput("; ".join(problems), details={"problems": problems}) from exc


def _accepted(job: IngestJobAccepted) -> JSONResponse:
    return JSONResponse(status_code=202, content=job.model_dump(), headers={"location": job.status_url})


async def _read_limited(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and ascii_digits(declared) and int(declared) > limit:
        raise PayloadTooLarge(f"request body of {int(declared):,} bytes is over the limit of {limit:,} bytes")
    body = bytearray()
    async for part in request.stream():
        body.extend(part)
        if len(body) > limit:
            raise PayloadTooLarge(f"request body is over the limit of {limit:,} bytes")
    return bytes(body)


KEEP_DUPLICATES = Query(
    False,
    description="true: a document whose text another source's document holds is stored as its own document "
    "(embedded once); false: it is reported `duplicate` and not stored.",
)
WAIT = Query(
    True,
    description="true: store the documents before answering (201). false: queue them as a job and answer 202 "
    "with its id and status_url at once (a multipart file is still parsed first, so a bad file is a 4xx).",
)
ENCODING = Query(
    None,
    min_length=1,
    max_length=32,
    description="File uploads: the text encoding of the file (e.g. cp949, euc-kr) instead of detecting it; "
    "the form field 'encoding' says the same.",
)


@router.post(
    "",
    response_model=IngestResponse,
    status_code=201,
    dependencies=[Depends(require(Role.WRITE, "name"))],
    summary="Add a document: a file upload (multipart 'file', optional 'metadata' JSON and 'encoding') or JSON "
    "text; ?wait=false queues it as a job (202)",
    openapi_extra=UPLOAD_DOC,
    responses=error_responses(
        BAD_BODY,
        UNKNOWN,
        (409, "A concurrent write stored the same document, or re-indexed the collection; retry."),
        BODY_TOO_LARGE,
        (415, "Neither multipart/form-data nor application/json, or a file type ragstore cannot read."),
        INVALID,
        DOWN,
    )
    | {
        202: {
            "model": IngestJobAccepted,
            "description": "Queued as a job, with `Location` set to its status_url: asked for with ?wait=false, "
            "or a large ingest (more than RAGSTORE_INGEST_JOB_DOCUMENTS documents or RAGSTORE_INGEST_JOB_BYTES "
            "bytes). Poll GET /v1/jobs/{id} for its state and progress.",
        }
    },
)
async def add_document(
    name: str,
    request: Request,
    wait: bool = WAIT,
    encoding: str | None = ENCODING,
    keep_duplicates: bool = KEEP_DUPLICATES,
    store: RagStore = Depends(get_store),
) -> IngestResponse | JSONResponse:
    limit = store.settings.max_document_bytes + MULTIPART_OVERHEAD
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/json":
        if encoding is not None:
            raise InvalidInput("'encoding' applies to file uploads; JSON text is already decoded")
        raw = await _read_limited(request, limit)
        try:
            payload = json.loads(raw or b"null")
        except json.JSONDecodeError as exc:
            raise InvalidInput(
                f"request body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
            ) from exc
        except UnicodeDecodeError as exc:  # json.loads decodes bytes first; a 400, as FastAPI answers elsewhere
            raise HTTPException(400, f"request body is not UTF-8 (byte {exc.start})") from exc
        docs = _document_inputs(payload if isinstance(payload, list) else [payload])
        if not docs:
            raise InvalidInput("no documents in the request")
        if not wait or is_large(store, len(docs), len(raw)):
            return _accepted(
                await run_in_threadpool(
                    partial(queue_ingest, request.app, store, name, docs, keep_duplicates=keep_duplicates)
                )
            )
        outcomes = await run_in_threadpool(partial(store.documents.add, name, docs, keep_duplicates=keep_duplicates))
        return IngestResponse(collection=name, documents=outcomes)
    if content_type == "multipart/form-data":
        return await _add_upload(
            name, request, store, limit, wait=wait, encoding=encoding, keep_duplicates=keep_duplicates
        )
    raise UnsupportedMediaType(
        f"send multipart/form-data (a file) or application/json (text), not {content_type or 'no content type'}"
    )


def _form_text(value: Any, field: str, max_length: int) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"'{field}' must be a text field, not a file")
    if len(value) > max_length:
        raise InvalidInput(f"'{field}' is longer than {max_length} characters")
    return value.strip() or None


async def _add_upload(
    name: str, request: Request, store: RagStore, limit: int, *, wait: bool, encoding: str | None, keep_duplicates: bool
) -> IngestResponse | JSONResponse:
    """A multipart upload: parsed (and so validated) here in every case; stored now, or queued as a job."""
    declared = request.headers.get("content-length")
    if declared is not None and ascii_digits(declared) and int(declared) > limit:
        raise PayloadTooLarge(f"upload of {int(declared):,} bytes is over the limit of {limit:,} bytes")
    form = await request.form(max_files=1, max_fields=10)
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise InvalidInput("multipart upload needs a 'file' part")
    data = await upload.read(store.settings.max_document_bytes + 1)
    metadata: dict[str, Any] = {}
    raw_meta = form.get("metadata")
    if isinstance(raw_meta, str) and raw_meta.strip():
        try:
            metadata = json.loads(raw_meta)
        except json.JSONDecodeError as exc:
            raise InvalidInput(f"'metadata' is not valid JSON: {exc.msg}") from exc
        if not isinstance(metadata, dict):
            raise InvalidInput("'metadata' must be a JSON object")
    form_encoding = _form_text(form.get("encoding"), "encoding", 32)
    if encoding is not None and form_encoding is not None and encoding.lower() != form_encoding.lower():
        raise InvalidInput(f"the query says encoding {encoding!r} and the form says {form_encoding!r}")
    loaded = await run_in_threadpool(
        partial(
            store.documents.load_upload,
            name,
            data,
            upload.filename or "upload",
            content_type=upload.content_type,
            metadata=metadata,
            encoding=encoding or form_encoding,
        )
    )
    if not wait or is_large(store, len(loaded), len(data)):
        return _accepted(
            await run_in_threadpool(
                partial(queue_ingest, request.app, store, name, loaded=loaded, keep_duplicates=keep_duplicates)
            )
        )
    outcomes = await run_in_threadpool(
        partial(store.documents.add_loaded, name, loaded, keep_duplicates=keep_duplicates)
    )
    return IngestResponse(collection=name, documents=outcomes)


@router.get(
    "",
    response_model=list[DocumentInfo],
    summary="List documents",
    dependencies=[Depends(require(Role.READ, "name"))],
    responses=error_responses(UNKNOWN, INVALID, DOWN),
)
def list_documents(
    name: str,
    limit: int = Query(100, ge=1, le=10_000),
    offset: int = Query(0, ge=0, le=INT64_MAX),
    store: RagStore = Depends(get_store),
) -> list[DocumentInfo]:
    return store.documents.list(name, limit=limit, offset=offset)


@router.get(
    "/{document_id:int}",
    response_model=DocumentInfo,
    summary="One document, optionally with its chunks",
    dependencies=[Depends(require(Role.READ, "name"))],
    responses=error_responses(UNKNOWN_DOCUMENT, INVALID, DOWN),
)
def get_document(
    name: str,
    document_id: int = Path(ge=1, le=INT64_MAX),
    chunks: bool = Query(False),
    store: RagStore = Depends(get_store),
) -> DocumentInfo:
    return store.documents.get(name, document_id, with_chunks=chunks)


@router.delete(
    "/{document_id:int}",
    status_code=204,
    summary="Delete a document and its vectors",
    dependencies=[Depends(require(Role.WRITE, "name"))],
    responses=error_responses(UNKNOWN_DOCUMENT, INVALID, DOWN),
)
def delete_document(
    name: str, document_id: int = Path(ge=1, le=INT64_MAX), store: RagStore = Depends(get_store)
) -> Response:
    store.documents.delete(name, document_id)
    return Response(status_code=204)
