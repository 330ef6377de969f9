"""Documents by source or filter, and chunks' vectors: what framework adapters and the HTTP client need.

LangChain and LlamaIndex name documents by their own string ids (ragstore's `source_uri`) and by metadata, so
reading and deleting many at once is one request here rather than one per document; an MMR re-ranking needs
the vectors of the hits it re-ranks.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends
from starlette.concurrency import run_in_threadpool

from ragstore.api.deps import get_store
from ragstore.api.errors import DOWN, JSON_BODY, error_responses
from ragstore.api.permissions import require
from ragstore.schemas import ChunkVector, DocumentDeletion, DocumentInfo
from ragstore.schemas.core import ChunkVectorsRequest, DocumentQuery, DocumentSelection
from ragstore.security.principal import Role
from ragstore.service import RagStore

router = APIRouter(prefix="/v1/collections/{name}", tags=["documents"])

UNKNOWN = (404, "The collection does not exist.")


@router.post(
    "/documents/find",
    response_model=list[DocumentInfo],
    summary="Documents by source_uri and/or filter, in id order (sources that name nothing are left out)",
    dependencies=[Depends(require(Role.READ, "name"))],
    responses=error_responses(*JSON_BODY, UNKNOWN, DOWN),
)
async def find_documents(name: str, body: DocumentQuery, store: RagStore = Depends(get_store)) -> list[DocumentInfo]:
    return await run_in_threadpool(
        lambda: store.documents.find(
            name,
            sources=body.sources,
            filter=body.filter,
            limit=body.limit,
            offset=body.offset,
            with_chunks=body.with_chunks,
        )
    )


@router.post(
    "/documents/delete",
    response_model=DocumentDeletion,
    summary="Delete the documents with these sources and/or passing a filter, or every one (audited)",
    dependencies=[Depends(require(Role.WRITE, "name"))],
    responses=error_responses(*JSON_BODY, UNKNOWN, DOWN),
)
async def delete_documents(
    name: str, body: DocumentSelection, store: RagStore = Depends(get_store)
) -> DocumentDeletion:
    return await run_in_threadpool(
        lambda: store.documents.delete_many(name, sources=body.sources, filter=body.filter, everything=body.everything)
    )


@router.post(
    "/chunks/vectors",
    response_model=list[ChunkVector],
    summary="The stored vectors of searchable chunks, in the order asked (unknown ids are left out)",
    dependencies=[Depends(require(Role.READ, "name"))],
    responses=error_responses(*JSON_BODY, UNKNOWN, DOWN),
)
async def chunk_vectors(
    name: str, body: ChunkVectorsRequest, store: RagStore = Depends(get_store)
) -> list[ChunkVector]:
    return await run_in_threadpool(store.documents.vectors, name, body.chunk_ids)
