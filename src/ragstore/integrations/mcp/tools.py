"""The MCP tools: search, list_collections, get_document and add_text, over the facade.

Each tool is the MCP face of one API route and asks what that route asks: the role it declares, on the
collection it names, through the API's own `authorize` (a collection the key holds no grant on is "not
found", as over HTTP, so a key scoped to A cannot learn whether B exists), and its input validated by the
API's own request models (`SearchRequest`, `DocumentInput`), so the limits and the messages are the
API's. The tool signatures add only the bounds an agent needs to see in the schema (k at most 100).
Results are typed models, so the SDK publishes an output schema and sends structured content.
"""

from __future__ import annotations

from typing import Annotated, Any

from mcp.server.mcpserver.exceptions import ToolError
from pydantic import BaseModel, Field

from ragstore.errors import Forbidden, PayloadTooLarge, RagstoreError
from ragstore.integrations.mcp.calls import CallRunner, validated
from ragstore.schemas import CollectionInfo, DocumentInfo, DocumentInput, IngestOutcome, SearchRequest
from ragstore.schemas.core import INT64_MAX, SearchMode
from ragstore.security.authorization import authorize, holds_anywhere, readable
from ragstore.security.principal import Principal, Role

__all__ = ["MAX_CHUNKS", "MAX_K", "CollectionList", "Hit", "SearchResult", "Tools"]

MAX_K = 100  # an agent's context, not a results page: the API pages deeper (offset, cursor)
MAX_CHUNKS = 500  # get_document(chunks=true): the first chunks; chunk_count says how many there are

CollectionName = Annotated[str, Field(min_length=1, max_length=128, description="The collection's name")]


class Hit(BaseModel):
    """One search result: a chunk, the document it belongs to and how well it matched."""

    chunk_id: int
    document_id: int
    score: float = Field(description="The mode's score (higher is better)")
    text: str
    ordinal: int = Field(description="The chunk's position in its document (0-based)")
    source_uri: str
    title: str
    metadata: dict[str, Any]


class SearchResult(BaseModel):
    collection: str
    query: str
    mode: str = Field(description="The mode that ran")
    hits: list[Hit]
    took_ms: float
    query_truncated: bool = Field(description="Only the start of a very long query was searched")


class CollectionList(BaseModel):
    collections: list[CollectionInfo]


def _tool_error(message: str, _: RagstoreError | None) -> Exception:
    return ToolError(message)


class Tools:
    """The tool functions (bound methods: the SDK reads their signatures for the input schemas)."""

    def __init__(self, calls: CallRunner) -> None:
        self.calls = calls
        self.store = calls.store

    def search(
        self,
        query: Annotated[str, Field(min_length=1, max_length=10_000, description="What to search for")],
        collection: CollectionName,
        mode: Annotated[
            SearchMode | None,
            Field(description="dense (meaning), lexical (words) or hybrid (both); default: the server's"),
        ] = None,
        k: Annotated[int, Field(ge=1, le=MAX_K, description="How many results")] = 10,
        filter: Annotated[
            dict[str, Any] | None,
            Field(
                description="Document fields or metadata keys: a value, a list (any of), or "
                '{"$eq","$ne","$gt","$gte","$lt","$lte","$in","$nin","$exists"}; "$and" and "$or" take lists of '
                'filters, "$not" one filter. E.g. {"lang": "ko", "year": {"$gte": 2024}}'
            ),
        ] = None,
    ) -> SearchResult:
        """Search a collection's chunks by meaning, by words, or both; each hit names its document."""

        def work(principal: Principal) -> SearchResult:
            authorize(principal, Role.READ, collection, what="search")
            request = validated(SearchRequest, {"query": query, "mode": mode, "k": k, "filter": filter})
            found = self.store.search.run(collection, request)
            hits = [
                Hit(
                    chunk_id=h.chunk_id,
                    document_id=h.document_id,
                    score=h.score,
                    text=h.text,
                    ordinal=h.ordinal,
                    source_uri=h.source_uri,
                    title=h.title,
                    metadata=h.metadata,
                )
                for h in found.hits
            ]
            return SearchResult(
                collection=collection,
                query=query,
                mode=found.mode,
                hits=hits,
                took_ms=found.took_ms,
                query_truncated=found.query_truncated,
            )

        return self.calls.run("tools/search", collection, work, failed=_tool_error)

    def list_collections(self) -> CollectionList:
        """The collections this key may read, with their document and chunk counts."""

        def work(principal: Principal) -> CollectionList:
            if not holds_anywhere(principal, Role.READ):
                raise Forbidden("listing collections needs the read role on some collection; the caller has none")
            every = self.store.collections.list()
            shown = readable(principal, [c.name for c in every])
            return CollectionList(collections=[c for c in every if c.name in shown])

        return self.calls.run("tools/list_collections", None, work, failed=_tool_error)

    def get_document(
        self,
        collection: CollectionName,
        document_id: Annotated[int, Field(ge=1, le=INT64_MAX, description="A search hit's document_id")],
        chunks: Annotated[
            bool, Field(description=f"Include the document's chunks (the first {MAX_CHUNKS}; see chunk_count)")
        ] = False,
    ) -> DocumentInfo:
        """One document's title, source, metadata and state, optionally with its chunks' text."""

        def work(principal: Principal) -> DocumentInfo:
            authorize(principal, Role.READ, collection, what="get_document")
            info = self.store.documents.get(collection, document_id, with_chunks=chunks)
            if info.chunks is not None and len(info.chunks) > MAX_CHUNKS:
                info = info.model_copy(update={"chunks": info.chunks[:MAX_CHUNKS]})
            return info

        return self.calls.run("tools/get_document", collection, work, failed=_tool_error)

    def add_text(
        self,
        collection: CollectionName,
        text: Annotated[str, Field(min_length=1, description="The document's text (chunked and embedded)")],
        title: Annotated[str, Field(max_length=1024, description="Default: the text's first line")] = "",
        metadata: Annotated[dict[str, Any] | None, Field(description="JSON metadata, searchable with a filter")] = None,
        source_uri: Annotated[
            str | None,
            Field(
                max_length=2048,
                description="Where it came from; a later add with the same source replaces the document",
            ),
        ] = None,
    ) -> IngestOutcome:
        """Store a text as a document of the collection (needs a key with the write role on it); it is
        searchable when this returns."""

        def work(principal: Principal) -> IngestOutcome:
            authorize(principal, Role.WRITE, collection, what="add_text")
            limit = self.store.settings.max_document_bytes
            size = len(text.encode("utf-8", "surrogatepass"))
            if size > limit:  # the API refuses a body over this limit before reading it (413)
                raise PayloadTooLarge(f"the text is {size:,} bytes, over the limit of {limit:,} bytes")
            document = validated(
                DocumentInput,
                {"text": text, "title": title, "metadata": metadata or {}, "source_uri": source_uri},
            )
            [outcome] = self.store.documents.add(collection, [document])
            return outcome

        return self.calls.run("tools/add_text", collection, work, failed=_tool_error)
