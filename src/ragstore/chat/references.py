"""A citation checked against the store as it is now.

A message keeps each cited chunk's id, its document's id and the chunk text's content hash at the time. Now:
- `current`: the chunk is still there, visible to search (`db.visibility`), with the same content hash;
- `changed`: the chunk is there with another hash, or its document is no longer the active one while a newer
  document of the same source is (a replacement hides the old version and adds a new one);
- `deleted`: the chunk or its document is gone, or the document is leaving with nothing in its place.

A chunk of a collection the caller holds no read grant on is reported `deleted`: what the caller may not
search, it may not learn about through a citation either.

Resolution reads by primary key (one query for the chunks, one more only when some document is not active),
so it runs on every context call, cached or not: a document deleted or replaced a second ago is reported as
such at once, and the session cache never needs to know which documents its entries cite.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import TypeAdapter
from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from ragstore.db.models import Collection, Document, DocumentChunk, DocumentStatus
from ragstore.db.visibility import is_visible
from ragstore.schemas.chat import MessageReference, ReferenceState, ResolvedReference
from ragstore.security.principal import Principal, Role

__all__ = ["resolve_references", "with_sources"]

RESOLVED = TypeAdapter(list[ResolvedReference])


def with_sources(s: Session, references: Sequence[MessageReference]) -> list[dict[str, object]]:
    """The references as stored: each with its chunk's collection and document source filled in (when the
    chunk exists now), so that a replacement of the document is recognised even after the old one is gone."""
    if not references:
        return []
    found = {
        int(i): (int(c), str(u))
        for i, c, u in s.execute(
            select(DocumentChunk.id, Document.collection_id, Document.source_uri)
            .join(Document, Document.id == DocumentChunk.document_id)
            .where(DocumentChunk.id.in_({r.chunk_id for r in references}))
        )
    }
    out = []
    for ref in references:
        where = found.get(ref.chunk_id)
        if where is not None:
            ref = ref.model_copy(update={"collection_id": where[0], "source_uri": where[1]})
        out.append(ref.model_dump(mode="json"))
    return out


def resolve_references(
    s: Session, principal: Principal, cited: Sequence[tuple[int, MessageReference]]
) -> list[ResolvedReference]:
    """Each (message id, reference) resolved now, in the order given."""
    if not cited:
        return []
    chunk_ids = sorted({ref.chunk_id for _, ref in cited})
    rows = {
        int(r.id): r
        for r in s.execute(
            select(
                DocumentChunk.id,
                DocumentChunk.content_hash,
                DocumentChunk.status.label("chunk_status"),
                Document.status.label("document_status"),
                Document.collection_id,
                Document.source_uri,
                Collection.name.label("collection"),
            )
            .join(Document, Document.id == DocumentChunk.document_id)
            .join(Collection, Collection.id == Document.collection_id)
            .where(DocumentChunk.id.in_(chunk_ids))
        )
    }

    def source(ref: MessageReference) -> tuple[int, str] | None:
        row = rows.get(ref.chunk_id)
        if row is not None:
            return int(row.collection_id), str(row.source_uri)
        return (ref.collection_id, ref.source_uri) if ref.collection_id and ref.source_uri else None

    # Cited chunks gone or in a document no longer active: is a newer version of that source active now?
    gone = {
        where
        for _, ref in cited
        if (ref.chunk_id not in rows or rows[ref.chunk_id].document_status != DocumentStatus.ACTIVE)
        and (where := source(ref)) is not None
    }
    replaced: dict[tuple[int, str], str] = {}
    if gone:
        replaced = {
            (int(c), str(u)): str(name)
            for c, u, name in s.execute(
                select(Document.collection_id, Document.source_uri, Collection.name)
                .join(Collection, Collection.id == Document.collection_id)
                .where(
                    Document.status == DocumentStatus.ACTIVE,
                    or_(*(and_(Document.collection_id == c, Document.source_uri == u) for c, u in gone)),
                )
            )
        }
    readable: dict[str, bool] = {}

    def may_read(collection: str) -> bool:
        if collection not in readable:
            readable[collection] = principal.allows(Role.READ, collection)
        return readable[collection]

    def state_of(ref: MessageReference) -> ReferenceState:
        row = rows.get(ref.chunk_id)
        if row is None or row.document_status != DocumentStatus.ACTIVE:
            newer = replaced.get(source(ref) or (0, ""))
            return "changed" if newer is not None and may_read(newer) else "deleted"
        if not may_read(row.collection):
            return "deleted"
        if row.content_hash != ref.content_hash or not is_visible(row.chunk_status, row.document_status):
            return "changed"
        return "current"

    # A long context cites the same few chunks again and again: each distinct citation is judged once.
    states: dict[tuple[int, str, int | None, str | None], ReferenceState] = {}
    out: list[dict[str, object]] = []
    for message_id, ref in cited:
        key = (ref.chunk_id, ref.content_hash, ref.collection_id, ref.source_uri)
        state = states.get(key)
        if state is None:
            state = states[key] = state_of(ref)
        out.append(
            {
                "chunk_id": ref.chunk_id,
                "document_id": ref.document_id,
                "score": ref.score,
                "content_hash": ref.content_hash,
                "state": state,
                "message_id": message_id,
            }
        )
    return RESOLVED.validate_python(out)  # one pass of pydantic-core: about 1 µs a citation
