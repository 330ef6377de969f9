"""The kinds of drift between the relational store and the vector index, each with a stable code.

Codes are part of the interface (reports, the API, `ragstore check --json`, alerts built on them): never
rename one. A kind is *safe* when its repair can only bring the index back to what SQL says, through the
outbox, without deleting a document or guessing at data.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = ["KINDS", "Kind", "KindInfo"]


class Kind(StrEnum):
    ORPHAN_VECTORS = "orphan_vectors"
    MISSING_VECTORS = "missing_vectors"
    STALE_VECTORS = "stale_vectors"
    STUCK_OPERATIONS = "stuck_operations"
    COUNT_DRIFT = "count_drift"
    DIMENSION_MISMATCH = "dimension_mismatch"
    DUPLICATE_CONTENT = "duplicate_content"
    DUPLICATE_SOURCE = "duplicate_source"


@dataclass(frozen=True)
class KindInfo:
    kind: Kind
    safe: bool
    meaning: str
    remedy: str


KINDS: dict[Kind, KindInfo] = {
    info.kind: info
    for info in (
        KindInfo(
            Kind.ORPHAN_VECTORS,
            True,
            "vectors in the index with no chunk row in SQL (or a whole index collection SQL does not know)",
            "deleted from the index through the outbox",
        ),
        KindInfo(
            Kind.MISSING_VECTORS,
            True,
            "chunks SQL holds as indexed that the index does not have",
            "upserted again from the embeddings table through the outbox",
        ),
        KindInfo(
            Kind.STALE_VECTORS,
            True,
            "the index holds another vector than SQL's embedding of the chunk (other text, other model)",
            "upserted again from the embeddings table through the outbox",
        ),
        KindInfo(
            Kind.STUCK_OPERATIONS,
            True,
            "outbox operations pending past the timeout, or dead-lettered",
            "retried now; what fails again stays dead and is reported",
        ),
        KindInfo(
            Kind.COUNT_DRIFT,
            True,
            "documents.chunk_count disagrees with the document's chunk rows",
            "recounted from the chunk rows",
        ),
        KindInfo(
            Kind.DIMENSION_MISMATCH,
            False,
            "a vector or an embedding of another dimension or model than its collection's, or none at all",
            "not repaired: re-embed with `ragstore index reembed -c COLLECTION`",
        ),
        KindInfo(
            Kind.DUPLICATE_CONTENT,
            False,
            "one content hash stored twice in a collection, or chunks whose document row is gone",
            "not repaired: inspect the ids and delete what is wrong with `ragstore documents delete`",
        ),
        KindInfo(
            Kind.DUPLICATE_SOURCE,
            False,
            "more than one active document with the same source_uri in a collection (the index of migration "
            "0009 forbids it; only a database written without that index can hold it)",
            "not repaired: delete all but the newest with `ragstore documents delete`, or ingest the source again",
        ),
    )
}
