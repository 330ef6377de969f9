"""Documents as MCP resources: `ragstore://collections/{collection}/documents/{document_id}`, as text.

ragstore keeps a document's chunks, not the text it was given, so a resource's text is its chunks joined
again: consecutive chunks of one section repeat up to RAGSTORE_CHUNK_OVERLAP_TOKENS of trailing sentences
(text/chunking.py), which `join_chunks` drops, so each passage is read once. Reading a resource needs the
read role on its collection, as GET /v1/collections/{name}/documents/{id} does; the listing shows the
documents of the collections the caller may read, at most `MAX_LISTED`, and a resource's text is cut at
`MAX_RESOURCE_CHARS` (an agent's context is the limit, and the chunks are in get_document).
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import quote

from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError
from mcp_types import Resource as MCPResource

from ragstore.errors import InvalidInput, NotFound, RagstoreError
from ragstore.integrations.mcp.calls import CallRunner
from ragstore.security.authorization import authorize, readable
from ragstore.security.principal import Principal, Role

__all__ = ["DOCUMENT_TEMPLATE", "MAX_LISTED", "MAX_RESOURCE_CHARS", "Documents", "document_uri", "join_chunks"]

DOCUMENT_TEMPLATE = "ragstore://collections/{collection}/documents/{document_id}"
MAX_LISTED = 100
MAX_RESOURCE_CHARS = 500_000
MAX_DOCUMENT_ID = 2**63 - 1


def document_uri(collection: str, document_id: int) -> str:
    return DOCUMENT_TEMPLATE.format(collection=quote(collection, safe=""), document_id=document_id)


def join_chunks(texts: Sequence[str]) -> str:
    """The chunks' text in order, each overlap with the previous chunk read once.

    A chunk that begins with the previous one's trailing sentences (whole segments, so the shared part
    ends where the chunk has a space or a paragraph break) continues after them; any other is a new
    paragraph.
    """
    parts: list[str] = []
    previous = ""
    for text in texts:
        shared = _overlap(previous, text)
        rest = text[shared:].lstrip()
        if rest:
            parts.append(("\n\n" if parts and not shared else " " if parts else "") + rest)
        previous = text
    return "".join(parts)


def _overlap(previous: str, text: str) -> int:
    """The length of the longest start of `text` that ends `previous` and ends at a boundary of `text`.

    Only where `previous` holds the first word of `text` is a longer comparison made, so joining a long
    document's chunks stays linear in practice."""
    if not previous or not text:
        return 0
    # The shared part is whole segments, so it holds at least the first word of `text`.
    first = text.split(None, 1)[0] if text.strip() else text
    probe = first[:32]
    at = previous.find(probe, max(0, len(previous) - len(text)))
    while at != -1:
        end = len(previous) - at
        if (end == len(text) or text[end].isspace()) and text.startswith(previous[at:]):
            return end
        at = previous.find(probe, at + 1)
    return 0


def _resource_error(message: str, error: RagstoreError | None) -> Exception:
    return ResourceNotFoundError(message) if isinstance(error, NotFound) else ResourceError(message)


class Documents:
    """Reading one document as a resource, and the bounded listing of those the caller may read."""

    def __init__(self, calls: CallRunner) -> None:
        self.calls = calls
        self.store = calls.store

    def read(self, collection: str, document_id: str) -> str:
        """The document's text (its chunks joined again), for a key with the read role on the collection."""

        def work(principal: Principal) -> str:
            authorize(principal, Role.READ, collection, what="reading a document")
            if not document_id.isascii() or not document_id.isdigit() or not 1 <= int(document_id) <= MAX_DOCUMENT_ID:
                raise InvalidInput(f"a document id is a positive whole number, not {document_id[:40]!r}")
            info = self.store.documents.get(collection, int(document_id), with_chunks=True)
            text = join_chunks([c.text for c in sorted(info.chunks or [], key=lambda c: c.ordinal)])
            if len(text) > MAX_RESOURCE_CHARS:
                cut = len(text) - MAX_RESOURCE_CHARS
                text = f"{text[:MAX_RESOURCE_CHARS]}\n\n[{cut:,} more characters: read the chunks with get_document]"
            return text

        return self.calls.run("resources/document", collection, work, failed=_resource_error)

    def listing(self) -> list[MCPResource]:
        """At most MAX_LISTED documents, collection by collection, of the collections the caller may read."""

        def work(principal: Principal) -> list[MCPResource]:
            every = [c.name for c in self.store.collections.list()]
            shown = readable(principal, every)
            listed: list[MCPResource] = []
            for name in (n for n in every if n in shown):
                if len(listed) >= MAX_LISTED:
                    break
                for doc in self.store.documents.list(name, limit=MAX_LISTED - len(listed)):
                    listed.append(
                        MCPResource(
                            uri=document_uri(name, doc.id),
                            name=f"{name}/{doc.id}",
                            title=doc.title or doc.source_uri,
                            description=f"{doc.source_uri} ({doc.chunk_count} chunks) in collection {name}",
                            mime_type="text/plain",
                            size=doc.size_bytes,
                        )
                    )
            return listed

        return self.calls.run("resources/list", None, work, failed=_resource_error)
