"""`client.documents`: the documents routes, with the signatures of `store.documents`.

Differences from the facade, all because the server, not the caller, holds the files and the job queue:
`add(wait=False)` is accepted but the server still stores the documents before answering (there is no
"stored, index pending" answer over HTTP); `ingest_bytes` uploads a file's bytes; `ingest_paths` and
`sync_paths` read the server's own files and are `LocalOnly`. `iter` follows the pages of `list`.
"""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from typing import Any

from ragstore.client import document_calls as calls
from ragstore.client.errors import LocalOnly
from ragstore.client.http import AsyncHttp, SyncHttp
from ragstore.errors import InvalidInput
from ragstore.schemas import ChunkVector, DocumentDeletion, DocumentInfo, DocumentInput, IngestOutcome, IngestReport

__all__ = ["AsyncDocuments", "Documents"]

MAX_PAGE = 10_000  # the route's largest `limit`


def _page_size(page_size: int) -> int:
    if isinstance(page_size, bool) or not isinstance(page_size, int) or not 1 <= page_size <= MAX_PAGE:
        raise InvalidInput(f"page_size must be an integer from 1 to {MAX_PAGE}, got {page_size!r}")
    return page_size


def _local_only(what: str) -> LocalOnly:
    return LocalOnly(f"{what} reads files where the store runs: it needs a local store (upload with ingest_bytes)")


class Documents:
    def __init__(self, http: SyncHttp) -> None:
        self._http = http

    def add(
        self,
        collection: str,
        documents: Sequence[DocumentInput | dict[str, Any]],
        *,
        wait: bool = True,
        keep_duplicates: bool = False,
    ) -> builtins.list[IngestOutcome]:
        """Store documents given as text; returns once they are stored and indexed (see the module note)."""
        return self._http.run(calls.add(collection, documents, keep_duplicates=keep_duplicates))

    def add_text(self, collection: str, text: str, **fields: Any) -> IngestOutcome:
        return self.add(collection, [DocumentInput(text=text, **fields)])[0]

    def ingest_bytes(
        self,
        collection: str,
        data: bytes,
        filename: str,
        *,
        content_type: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> builtins.list[IngestOutcome]:
        """Upload one file (the server parses it as `ragstore ingest` would)."""
        return self._http.run(calls.ingest_bytes(collection, data, filename, content_type, metadata))

    def ingest_paths(self, collection: str, paths: Iterable[Any], **options: Any) -> IngestReport:
        raise _local_only("ingest_paths")

    def sync_paths(self, collection: str, paths: Iterable[Any], **options: Any) -> IngestReport:
        raise _local_only("sync_paths")

    def list(self, collection: str, *, limit: int = 100, offset: int = 0) -> builtins.list[DocumentInfo]:
        return self._http.run(calls.listing(collection, limit, offset))

    def iter(self, collection: str, *, page_size: int = 100) -> Iterator[DocumentInfo]:
        """Every document of the collection, a page at a time (a document added meanwhile may be missed,
        one deleted meanwhile may shift a later page by one)."""
        size, offset = _page_size(page_size), 0
        while True:
            page = self.list(collection, limit=size, offset=offset)
            yield from page
            if len(page) < size:
                return
            offset += size

    def get(self, collection: str, document_id: int, *, with_chunks: bool = False) -> DocumentInfo:
        return self._http.run(calls.get(collection, document_id, with_chunks))

    def delete(self, collection: str, document_id: int) -> None:
        self._http.run(calls.delete(collection, document_id))

    def find(
        self,
        collection: str,
        *,
        sources: Sequence[str] | None = None,
        filter: dict[str, Any] | None = None,
        limit: int = 100,
        offset: int = 0,
        with_chunks: bool = False,
    ) -> builtins.list[DocumentInfo]:
        """Documents by source and/or filter, in id order (as `store.documents.find`)."""
        return self._http.run(calls.find(collection, sources, filter, limit, offset, with_chunks))

    def delete_many(
        self,
        collection: str,
        *,
        sources: Sequence[str] | None = None,
        filter: dict[str, Any] | None = None,
        everything: bool = False,
    ) -> DocumentDeletion:
        return self._http.run(calls.delete_many(collection, sources, filter, everything))

    def vectors(self, collection: str, chunk_ids: Sequence[int]) -> builtins.list[ChunkVector]:
        return self._http.run(calls.vectors(collection, chunk_ids))


class AsyncDocuments:
    def __init__(self, http: AsyncHttp) -> None:
        self._http = http

    async def add(
        self,
        collection: str,
        documents: Sequence[DocumentInput | dict[str, Any]],
        *,
        wait: bool = True,
        keep_duplicates: bool = False,
    ) -> builtins.list[IngestOutcome]:
        return await self._http.run(calls.add(collection, documents, keep_duplicates=keep_duplicates))

    async def add_text(self, collection: str, text: str, **fields: Any) -> IngestOutcome:
        return (await self.add(collection, [DocumentInput(text=text, **fields)]))[0]

    async def ingest_bytes(
        self,
        collection: str,
        data: bytes,
        filename: str,
        *,
        content_type: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> builtins.list[IngestOutcome]:
        return await self._http.run(calls.ingest_bytes(collection, data, filename, content_type, metadata))

    async def ingest_paths(self, collection: str, paths: Iterable[Any], **options: Any) -> IngestReport:
        raise _local_only("ingest_paths")

    async def sync_paths(self, collection: str, paths: Iterable[Any], **options: Any) -> IngestReport:
        raise _local_only("sync_paths")

    async def list(self, collection: str, *, limit: int = 100, offset: int = 0) -> builtins.list[DocumentInfo]:
        return await self._http.run(calls.listing(collection, limit, offset))

    async def iter(self, collection: str, *, page_size: int = 100) -> AsyncIterator[DocumentInfo]:
        size, offset = _page_size(page_size), 0
        while True:
            page = await self.list(collection, limit=size, offset=offset)
            for doc in page:
                yield doc
            if len(page) < size:
                return
            offset += size

    async def get(self, collection: str, document_id: int, *, with_chunks: bool = False) -> DocumentInfo:
        return await self._http.run(calls.get(collection, document_id, with_chunks))

    async def delete(self, collection: str, document_id: int) -> None:
        await self._http.run(calls.delete(collection, document_id))

    async def find(
        self,
        collection: str,
        *,
        sources: Sequence[str] | None = None,
        filter: dict[str, Any] | None = None,
        limit: int = 100,
        offset: int = 0,
        with_chunks: bool = False,
    ) -> builtins.list[DocumentInfo]:
        return await self._http.run(calls.find(collection, sources, filter, limit, offset, with_chunks))

    async def delete_many(
        self,
        collection: str,
        *,
        sources: Sequence[str] | None = None,
        filter: dict[str, Any] | None = None,
        everything: bool = False,
    ) -> DocumentDeletion:
        return await self._http.run(calls.delete_many(collection, sources, filter, everything))

    async def vectors(self, collection: str, chunk_ids: Sequence[int]) -> builtins.list[ChunkVector]:
        return await self._http.run(calls.vectors(collection, chunk_ids))
