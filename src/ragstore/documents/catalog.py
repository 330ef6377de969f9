"""Collections and documents in SQL: creation, listing, and the first transaction of every deletion."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import bindparam, case, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ragstore.clock import SYSTEM_CLOCK, Clock
from ragstore.db.batches import in_batches
from ragstore.db.engine import Database
from ragstore.db.models import (
    ChunkStatus,
    Collection,
    CollectionStatus,
    Document,
    DocumentChunk,
    DocumentStatus,
    OpKind,
    utcnow,
)
from ragstore.db.versions import bump_write_version
from ragstore.documents.selection import Selection
from ragstore.errors import Conflict, InvalidInput, NotFound, RagstoreError
from ragstore.schemas import ChunkInfo, CollectionInfo, DocumentInfo, IndexState
from ragstore.security.audit import AuditTrail
from ragstore.sync.outbox import queue_operation
from ragstore.valid_text import INT64_MAX, checked_text

__all__ = ["Catalog", "validate_collection_name"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
METRICS = ("cosine",)
T = TypeVar("T")


def validate_collection_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidInput(
            f"invalid collection name {name!r}: use 1-128 letters, digits, '_', '-' or '.', "
            "starting with a letter or digit"
        )
    return name


@dataclass(frozen=True)
class CollectionRef:
    """What the search path needs of a collection."""

    id: int
    name: str
    embedding_model: str
    dimension: int


# How long a name -> collection lookup is reused. Local creates and drops invalidate at once; the TTL bounds
# how long another process's drop-and-recreate of the same name can go unseen.
RESOLVE_TTL_S = 1.0
_RESOLVE = select(Collection.id, Collection.name, Collection.embedding_model, Collection.dimension).where(
    Collection.name == bindparam("name"), Collection.status == CollectionStatus.ACTIVE
)


class Catalog:
    def __init__(
        self,
        db: Database,
        *,
        on_create: Callable[[Session, int], None] | None = None,
        clock: Clock = SYSTEM_CLOCK,
        audit: AuditTrail | None = None,
    ) -> None:
        """`on_create` runs in a new collection's creating transaction (the lexical index records its
        analyzer there); `clock` dates the outbox operations it queues (the applier's clock decides when they
        are due, so both must agree); `audit` records creates and deletes in the same transaction."""
        self.db = db
        self.on_create = on_create
        self.clock = clock
        self.audit = audit
        self._refs: dict[str, tuple[float, CollectionRef]] = {}

    def _audited(
        self,
        action: str,
        target: str,
        unit: Callable[[Session], T],
        details: Callable[[T], dict[str, Any]] | None = None,
    ) -> T:
        """`db.write(unit)` with its audit row in the same transaction; a refusal is recorded as a failure.
        `details` describes the result in that row (what a bulk delete removed)."""
        audit = self.audit
        if audit is None:
            return self.db.write(unit)

        def recorded(s: Session) -> T:
            result = unit(s)
            audit.append(s, action, target=target, details=details(result) if details is not None else None)
            return result

        try:
            return self.db.write(recorded)
        except RagstoreError as exc:
            audit.record_failure(action, target=target, error=exc.message)
            raise

    def resolve(self, name: str) -> CollectionRef:
        """The active collection called `name` (cached briefly: the search path asks for it every query)."""
        cached = self._refs.get(name)
        now = time.monotonic()
        if cached is not None and now - cached[0] < RESOLVE_TTL_S:
            return cached[1]
        rows = self.db.fetch(_RESOLVE, {"name": name})
        if not rows:
            self._refs.pop(name, None)
            raise NotFound(f"collection {name!r} does not exist", details={"collection": name})
        ref = CollectionRef(int(rows[0].id), rows[0].name, rows[0].embedding_model, int(rows[0].dimension))
        self._refs[name] = (now, ref)
        return ref

    def cached_ref(self, name: str) -> CollectionRef | None:
        """What `resolve` would answer from its cache alone, or None (then nothing is read)."""
        cached = self._refs.get(name)
        if cached is not None and time.monotonic() - cached[0] < RESOLVE_TTL_S:
            return cached[1]
        return None

    def write_version(self, collection_id: int) -> int:
        """The collection's write version, read now (the search path's cache key; one primary-key lookup)."""
        if self.db.is_sqlite:
            rows = self.db.raw_sqlite_rows("SELECT write_version FROM collections WHERE id = ?", (collection_id,))
        else:
            rows = self.db.raw_postgres_rows("SELECT write_version FROM collections WHERE id = %s", (collection_id,))
        return int(rows[0][0]) if rows else -1

    def active_refs(self) -> list[CollectionRef]:
        with self.db.read() as s:
            rows = s.execute(
                select(Collection.id, Collection.name, Collection.embedding_model, Collection.dimension)
                .where(Collection.status == CollectionStatus.ACTIVE)
                .order_by(Collection.name)
            ).all()
        return [CollectionRef(int(r[0]), r[1], r[2], int(r[3])) for r in rows]

    def forget(self, name: str) -> None:
        self._refs.pop(name, None)

    # -- collections ---------------------------------------------------------------------------------------
    def get_row(self, s: Session, name: str) -> Collection:
        row = s.scalars(
            select(Collection).where(Collection.name == name, Collection.status == CollectionStatus.ACTIVE)
        ).first()
        if row is None:
            raise NotFound(f"collection {name!r} does not exist", details={"collection": name})
        return row

    def create_collection(
        self, name: str, *, embedding_model: str, dimension: int, metric: str = "cosine", description: str = ""
    ) -> Collection:
        validate_collection_name(name)
        checked_text(description, "description")
        checked_text(embedding_model, "embedding_model")
        if metric not in METRICS:
            raise InvalidInput(f"unsupported metric {metric!r}; supported: {', '.join(METRICS)}")
        if not isinstance(dimension, int) or not 1 <= dimension <= 16_384:
            raise InvalidInput(f"dimension must be an integer from 1 to 16384, got {dimension!r}")

        def unit(s: Session) -> Collection:
            existing = s.scalars(select(Collection).where(Collection.name == name)).first()
            if existing is not None:
                state = "is being deleted" if existing.status == CollectionStatus.DELETING else "already exists"
                raise Conflict(f"collection {name!r} {state}", details={"collection": name})
            # Stored vectors are keyed by (model, text): a model name is one vector space, shared by every
            # collection that names it. Another dimension under the same name would overwrite theirs.
            other = s.execute(
                select(Collection.name, Collection.dimension).where(
                    Collection.embedding_model == embedding_model,
                    Collection.dimension != dimension,
                    Collection.status == CollectionStatus.ACTIVE,
                )
            ).first()
            if other is not None:
                raise Conflict(
                    f"embedding model {embedding_model!r} is used by collection {other.name!r} with dimension "
                    f"{other.dimension}, not {dimension}: give this collection's vectors another model name",
                    details={"collection": name, "setting": "embedding_model"},
                )
            row = Collection(
                name=name,
                description=description,
                embedding_model=embedding_model,
                dimension=dimension,
                metric=metric,
                settings={},
                status=CollectionStatus.ACTIVE,
                write_version=0,
            )
            s.add(row)
            s.flush()
            if self.on_create is not None:
                self.on_create(s, row.id)
            return row

        self.forget(name)
        try:
            return self._audited("collection.create", name, unit)
        except IntegrityError as exc:
            raise Conflict(f"collection {name!r} already exists") from exc

    def collection_info(self, s: Session, row: Collection) -> CollectionInfo:
        docs = s.scalar(
            select(func.count())
            .select_from(Document)
            .where(Document.collection_id == row.id, Document.status == DocumentStatus.ACTIVE)
        )
        chunk_total, indexed = s.execute(
            select(
                func.count(DocumentChunk.id),
                func.coalesce(func.sum(case((DocumentChunk.status == ChunkStatus.INDEXED, 1), else_=0)), 0),
            ).where(DocumentChunk.collection_id == row.id, DocumentChunk.status != ChunkStatus.DELETING)
        ).one()
        return CollectionInfo(
            name=row.name,
            description=row.description,
            embedding_model=row.embedding_model,
            dimension=row.dimension,
            metric=row.metric,
            document_count=int(docs or 0),
            chunk_count=int(chunk_total or 0),
            indexed_chunk_count=int(indexed or 0),
            created_at=row.created_at,
            updated_at=row.updated_at,
        )

    def list_collections(self) -> list[CollectionInfo]:
        with self.db.read() as s:
            rows = s.scalars(
                select(Collection).where(Collection.status == CollectionStatus.ACTIVE).order_by(Collection.name)
            )
            return [self.collection_info(s, row) for row in rows]

    def get_collection(self, name: str) -> CollectionInfo:
        with self.db.read() as s:
            return self.collection_info(s, self.get_row(s, name))

    def begin_drop_collection(self, name: str) -> int:
        """Phase one of a drop: hide the collection and queue the index drop; the applier finishes it."""

        def unit(s: Session) -> int:
            row = self.get_row(s, name)
            self.forget(name)
            row.status = CollectionStatus.DELETING
            # Free the name at once: a new collection of the same name may be created right away.
            row.name = f"{row.name}.deleting.{row.id}"[:128]
            queue_operation(s, row.id, OpKind.DROP_COLLECTION, [], now=self.clock.now())
            return row.id

        return self._audited("collection.delete", name, unit)

    # -- documents -----------------------------------------------------------------------------------------
    @staticmethod
    def index_states(s: Session, document_ids: list[int]) -> dict[int, IndexState]:
        if not document_ids:
            return {}
        rows = [
            row
            for part in in_batches(document_ids)
            for row in s.execute(
                select(
                    DocumentChunk.document_id,
                    func.sum(case((DocumentChunk.status == ChunkStatus.PENDING, 1), else_=0)),
                    func.sum(case((DocumentChunk.status == ChunkStatus.DELETING, 1), else_=0)),
                )
                .where(DocumentChunk.document_id.in_(part))
                .group_by(DocumentChunk.document_id)
            )
        ]
        states: dict[int, IndexState] = {doc_id: "indexed" for doc_id in document_ids}
        for doc_id, pending, deleting in rows:
            states[doc_id] = "deleting" if deleting else "pending" if pending else "indexed"
        return states

    def _info(
        self, doc: Document, collection: str, state: IndexState, chunks: list[ChunkInfo] | None = None
    ) -> DocumentInfo:
        return DocumentInfo(
            id=doc.id,
            collection=collection,
            source_uri=doc.source_uri,
            title=doc.title,
            mime_type=doc.mime_type,
            size_bytes=doc.size_bytes,
            metadata=dict(doc.metadata_ or {}),
            content_hash=doc.content_hash,
            encoding=doc.encoding,
            source_hash=doc.source_hash,
            status=doc.status,
            index_state="deleting" if doc.status == DocumentStatus.DELETING else state,
            chunk_count=doc.chunk_count,
            created_at=doc.created_at,
            updated_at=doc.updated_at,
            chunks=chunks,
        )

    def get_document(self, collection: str, document_id: int, *, with_chunks: bool = False) -> DocumentInfo:
        with self.db.read() as s:
            coll = self.get_row(s, collection)
            doc = s.get(Document, document_id) if 1 <= document_id <= INT64_MAX else None
            if doc is None or doc.collection_id != coll.id or doc.status != DocumentStatus.ACTIVE:
                raise NotFound(f"document {document_id} does not exist in collection {collection!r}")
            chunks = None
            if with_chunks:
                chunks = [
                    ChunkInfo.model_validate(c)
                    for c in s.scalars(
                        select(DocumentChunk).where(DocumentChunk.document_id == doc.id).order_by(DocumentChunk.ordinal)
                    )
                ]
            return self._info(doc, collection, self.index_states(s, [doc.id])[doc.id], chunks)

    def find_documents(
        self, collection: str, selection: Selection, *, limit: int = 100, offset: int = 0, with_chunks: bool = False
    ) -> list[DocumentInfo]:
        """The active documents a selection names, in id order; each with its chunks if asked."""
        if not 1 <= limit <= 10_000 or not 0 <= offset <= INT64_MAX:
            raise InvalidInput("limit must be 1-10000 and offset from 0 to 2^63-1")
        with self.db.read() as s:
            coll = self.get_row(s, collection)
            queries = list(selection.queries(coll.id, postgres=not self.db.is_sqlite))
            if len(queries) == 1:
                docs = list(s.scalars(queries[0].order_by(Document.id).offset(offset).limit(limit)))
            else:  # sources in slices: at most MAX_SOURCES documents in all, ordered and paged here
                found = {d.id: d for query in queries for d in s.scalars(query)}
                docs = [found[i] for i in sorted(found)][offset : offset + limit]
            states = self.index_states(s, [d.id for d in docs])
            chunks: dict[int, list[ChunkInfo]] = {}
            if with_chunks:
                for part in in_batches([d.id for d in docs]):
                    for c in s.scalars(
                        select(DocumentChunk)
                        .where(DocumentChunk.document_id.in_(part))
                        .order_by(DocumentChunk.document_id, DocumentChunk.ordinal)
                    ):
                        chunks.setdefault(c.document_id, []).append(ChunkInfo.model_validate(c))
            return [
                self._info(d, collection, states[d.id], chunks.get(d.id, []) if with_chunks else None) for d in docs
            ]

    def begin_delete_where(self, collection: str, selection: Selection) -> tuple[list[int], int | None]:
        """Phase one of a bulk delete, in one transaction: (the documents hidden, the outbox operation or None).

        One audit row names the selection and how many documents it removed; naming no document is no error
        (a caller deleting ids it is unsure of gets nothing deleted, not a 404).
        """

        def unit(s: Session) -> tuple[list[int], int | None]:
            coll = self.get_row(s, collection)
            ids: set[int] = set()
            for query in selection.queries(coll.id, postgres=not self.db.is_sqlite):
                ids.update(int(i) for i in s.scalars(query.with_only_columns(Document.id)))
            found = sorted(ids)
            return found, (self.mark_documents_deleting(s, coll.id, found) if found else None)

        return self._audited(
            "document.delete_many",
            collection,
            unit,
            lambda result: {**selection.described(), "deleted": len(result[0])},
        )

    def begin_delete_document(self, collection: str, document_id: int) -> int:
        """Phase one of a delete: hide the document, mark its chunks deleting, queue their removal."""

        def unit(s: Session) -> int:
            coll = self.get_row(s, collection)
            doc = s.get(Document, document_id) if 1 <= document_id <= INT64_MAX else None
            if doc is None or doc.collection_id != coll.id or doc.status != DocumentStatus.ACTIVE:
                raise NotFound(f"document {document_id} does not exist in collection {collection!r}")
            return self.mark_documents_deleting(s, coll.id, [doc.id])

        return self._audited("document.delete", f"{collection}/{document_id}", unit)

    def mark_documents_deleting(self, s: Session, collection_id: int, document_ids: list[int]) -> int:
        """Within the caller's transaction: hide documents and queue their chunks' removal; returns the op id."""
        chunk_ids: list[int] = []
        for part in in_batches(document_ids):  # a replacing batch may name thousands of documents
            chunk_ids += [
                int(i) for i in s.scalars(select(DocumentChunk.id).where(DocumentChunk.document_id.in_(part)))
            ]
            s.execute(
                update(Document)
                .where(Document.id.in_(part))
                .values(status=DocumentStatus.DELETING, updated_at=utcnow())
            )
            s.execute(
                update(DocumentChunk)
                .where(DocumentChunk.document_id.in_(part))
                .values(status=ChunkStatus.DELETING, updated_at=utcnow())
            )
        op = queue_operation(s, collection_id, OpKind.DELETE, chunk_ids, now=self.clock.now())
        bump_write_version(s, collection_id)
        s.flush()
        return op.id


def document_metadata(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInput(f"metadata must be a JSON object, got {type(value).__name__}")
    return value
