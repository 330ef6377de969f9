"""The collections and documents sub-facades: `store.collections` and `store.documents`.

Every write here ends the same way (announce the change, then apply the queued index work or leave it to a
worker), which is why both classes take the store's `ChangeFeed` rather than the bus and the applier.
"""

from __future__ import annotations

import builtins
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ValidationError

from ragstore.clock import SYSTEM_CLOCK, Clock
from ragstore.documents.catalog import Catalog
from ragstore.documents.files import FileRun
from ragstore.documents.ingest import ChunkProgressFn, Ingestor, PreparedDocument
from ragstore.documents.progress import ProgressFn
from ragstore.documents.selection import Selection, chunk_vectors
from ragstore.embeddings.base import Embedder
from ragstore.errors import Conflict, InvalidInput, NotFound
from ragstore.schemas import (
    ChunkVector,
    CollectionInfo,
    DocumentDeletion,
    DocumentInfo,
    DocumentInput,
    IngestOutcome,
    IngestReport,
)
from ragstore.sync.changes import ChangeFeed
from ragstore.text.limits import DEFAULT_LIMITS, LoadLimits
from ragstore.text.loaders import LoadedDocument, load_bytes

__all__ = ["CollectionService", "DocumentService", "ProgressFn"]


def _document_input(raw: dict[str, Any], position: int) -> DocumentInput:
    """A Python caller's dict, validated by the API's own model; its problems as InvalidInput naming the field
    (the same words the API answers with 422), never pydantic's exception."""
    try:
        return DocumentInput.model_validate(raw)
    except ValidationError as exc:
        problems = [
            f"documents[{position}].{'.'.join(str(p) for p in e['loc'])}: {e['msg'].removeprefix('Value error, ')}"
            for e in exc.errors(include_input=False)
        ]
        raise InvalidInput("; ".join(problems), details={"problems": problems}) from None


@dataclass(kw_only=True, slots=True)
class CollectionService:
    """Create, list, read and drop collections."""

    catalog: Catalog
    embedder: Embedder
    changes: ChangeFeed

    def create(
        self,
        name: str,
        *,
        description: str = "",
        embedding_model: str | None = None,
        dimension: int | None = None,
        metric: str = "cosine",
        exist_ok: bool = False,
    ) -> CollectionInfo:
        """A new collection; by default it uses this store's embedder (its model and dimension).

        Name another `embedding_model` with its `dimension` for vectors you bring yourself. With `exist_ok`,
        a collection of that name with the same settings is returned as it is (a script may run twice); one
        with other settings is a Conflict naming the setting that differs.
        """
        model = embedding_model or self.embedder.model
        if model == self.embedder.model:
            if dimension not in (None, self.embedder.dimension):
                raise InvalidInput(f"model {model!r} has dimension {self.embedder.dimension}, not {dimension}")
            dimension = self.embedder.dimension
        elif dimension is None:
            raise InvalidInput(f"dimension is required for a collection with its own embedding model {model!r}")
        if exist_ok:
            found = self._existing(name, model, dimension, metric, description)
            if found is not None:
                return found
        try:
            self.catalog.create_collection(
                name, embedding_model=model, dimension=dimension, metric=metric, description=description
            )
        except Conflict:
            # Created by someone else between the look and the insert: the same answer as if it had been first.
            found = self._existing(name, model, dimension, metric, description) if exist_ok else None
            if found is None:
                raise
            return found
        return self.get(name)

    def _existing(self, name: str, model: str, dimension: int, metric: str, description: str) -> CollectionInfo | None:
        """The active collection `name` if its settings are these (a description given must match too)."""
        try:
            info = self.get(name)
        except NotFound:
            return None
        wanted = {"embedding_model": model, "dimension": dimension, "metric": metric}
        if description:
            wanted["description"] = description
        for setting, value in wanted.items():
            have = getattr(info, setting)
            if have != value:
                raise Conflict(
                    f"collection {name!r} exists with {setting} {have!r}, not {value!r}",
                    details={"collection": name, "setting": setting},
                )
        return info

    def list(self) -> builtins.list[CollectionInfo]:
        return self.catalog.list_collections()

    def get(self, name: str) -> CollectionInfo:
        return self.catalog.get_collection(name)

    def delete(self, name: str) -> None:
        """Delete a collection, its documents and its vectors (through the outbox)."""
        collection_id = self.catalog.begin_drop_collection(name)
        self.changes.announce({collection_id})
        self.changes.apply_now()


@dataclass(kw_only=True, slots=True)
class DocumentService:
    """Store documents (text, uploads, files), list, read and delete them."""

    catalog: Catalog
    ingestor: Ingestor
    changes: ChangeFeed
    max_document_bytes: int
    limits: LoadLimits = DEFAULT_LIMITS  # what one file may cost to read
    clock: Clock = SYSTEM_CLOCK  # times the per-file limit
    stopping: threading.Event | None = None  # the store's shutdown: loads stop at their next checkpoint

    def add(
        self,
        collection: str,
        documents: Sequence[DocumentInput | dict[str, Any]],
        *,
        wait: bool = True,
        on_chunks: ChunkProgressFn | None = None,
        keep_duplicates: bool = False,
    ) -> builtins.list[IngestOutcome]:
        """Store documents given as text (optionally pre-chunked, optionally with vectors).

        A document whose content another source's document holds is reported `duplicate` (naming it) and
        not stored, unless `keep_duplicates` (stored as its own document; no chunk is embedded twice).

        With `wait=False` the call returns once the documents are stored, with `index_state` pending; a sync
        worker (this process's, or any `ragstore worker` process) indexes them meanwhile, so a bulk load
        overlaps SQL writes with index insertion. `store.index.wait()` blocks until everything queued is
        searchable.
        """
        prepared = []
        for i, raw in enumerate(documents):
            doc = raw if isinstance(raw, DocumentInput) else _document_input(raw, i)
            source = doc.source_uri or f"text:{i}"
            loaded = LoadedDocument(
                source_uri=source,
                title=doc.title or (doc.text.strip().splitlines() or [""])[0][:200],
                mime_type="text/plain",
                text=doc.text,
                size_bytes=len(doc.text.encode()),
                metadata=dict(doc.metadata),
            )
            chunks = [c.text for c in doc.chunks] if doc.chunks is not None else None
            vectors = None
            if doc.chunks is not None and any(c.vector is not None for c in doc.chunks):
                if any(c.vector is None for c in doc.chunks):
                    raise InvalidInput(f"{source}: give a vector for every chunk or for none")
                vectors = [np.asarray(c.vector, dtype=np.float32) for c in doc.chunks if c.vector is not None]
            prepared.append(self.ingestor.prepare(loaded, chunks=chunks, vectors=vectors))
            if not doc.source_uri:
                prepared[-1].loaded.source_uri = f"text:{prepared[-1].content_hash[:16]}"
        return self._store(collection, prepared, wait=wait, on_chunks=on_chunks, keep_duplicates=keep_duplicates)

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
        """Store one uploaded file (a .jsonl file may hold several documents)."""
        loaded = self.load_upload(collection, data, filename, content_type=content_type, metadata=metadata)
        return self.add_loaded(collection, loaded)

    def load_upload(
        self,
        collection: str,
        data: bytes,
        filename: str,
        *,
        content_type: str | None = None,
        metadata: dict[str, Any] | None = None,
        encoding: str | None = None,
    ) -> builtins.list[LoadedDocument]:
        """Parse an uploaded file into documents, storing nothing (the API queues a large one as a job);
        `encoding` decodes a text format instead of detecting it (`load_bytes`)."""
        self.catalog.get_collection(collection)  # an unknown collection is refused before any parsing
        loaded = load_bytes(
            data,
            filename,
            max_bytes=self.max_document_bytes,
            content_type=content_type,
            limits=self.limits,
            clock=self.clock,
            stopping=self.stopping,
            encoding=encoding,
        )
        for doc in loaded:
            doc.metadata = {**doc.metadata, **(metadata or {})}
        return loaded

    def add_loaded(
        self,
        collection: str,
        loaded: builtins.list[LoadedDocument],
        *,
        on_chunks: ChunkProgressFn | None = None,
        keep_duplicates: bool = False,
    ) -> builtins.list[IngestOutcome]:
        return self._store(
            collection, [self.ingestor.prepare(d) for d in loaded], on_chunks=on_chunks, keep_duplicates=keep_duplicates
        )

    def ingest_paths(
        self,
        collection: str,
        paths: Iterable[str | Path],
        *,
        root: str | Path | None = None,
        keep_duplicates: bool = False,
        encoding: str | None = None,
        progress: ProgressFn | None = None,
        create: Callable[[], object] | None = None,
        batch_size: int = 16,
        dry_run: bool = False,
        confine_to: Sequence[Path] = (),
    ) -> IngestReport:
        """Ingest files, folders (recursively) and globs; a bad file is reported as failed, not fatal.

        Each file's source is its resolved path, or its POSIX path under `root` (documents/files.py). A file
        whose bytes its source's document already holds is `unchanged` without being parsed. `create`, when
        the collection does not exist, is called just before the first document is stored: a run whose
        every file fails creates nothing.
        """
        return FileRun(
            self,
            collection,
            list(paths),
            root=root,
            dry_run=dry_run,
            keep_duplicates=keep_duplicates,
            encoding=encoding,
            progress=progress,
            create=create,
            batch_size=batch_size,
            confine_to=tuple(confine_to),
        ).run()

    def sync_paths(
        self,
        collection: str,
        paths: Iterable[str | Path],
        *,
        root: str | Path | None = None,
        dry_run: bool = False,
        keep_duplicates: bool = False,
        encoding: str | None = None,
        progress: ProgressFn | None = None,
        create: Callable[[], object] | None = None,
        batch_size: int = 16,
        confine_to: Sequence[Path] = (),
    ) -> IngestReport:
        """Make the collection mirror the trees: changed files replaced, new ones added, and the documents of
        files gone from them deleted (audited, through the outbox). Only documents that came from files under
        the given folders (with `root`: under the root) are in scope; text documents are never touched.
        `dry_run` reports what would happen and changes nothing."""
        return FileRun(
            self,
            collection,
            list(paths),
            root=root,
            sync=True,
            dry_run=dry_run,
            keep_duplicates=keep_duplicates,
            encoding=encoding,
            progress=progress,
            create=create,
            batch_size=batch_size,
            confine_to=tuple(confine_to),
        ).run()

    def list(self, collection: str, *, limit: int = 100, offset: int = 0) -> builtins.list[DocumentInfo]:
        return self.catalog.find_documents(collection, Selection(), limit=limit, offset=offset)

    def get(self, collection: str, document_id: int, *, with_chunks: bool = False) -> DocumentInfo:
        return self.catalog.get_document(collection, document_id, with_chunks=with_chunks)

    def delete(self, collection: str, document_id: int) -> None:
        """Hide the document now, remove its vectors, then its rows (the outbox's two phases)."""
        self.catalog.begin_delete_document(collection, document_id)
        self.changes.announce({self.catalog.resolve(collection).id})
        self.changes.apply_now()

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
        """The active documents with these sources and/or passing this filter (search's filter syntax), in id
        order; neither given: every document, as `list`. Sources that name no document are left out."""
        selection = Selection.of(sources=sources, filter=filter)
        return self.catalog.find_documents(collection, selection, limit=limit, offset=offset, with_chunks=with_chunks)

    def delete_many(
        self,
        collection: str,
        *,
        sources: Sequence[str] | None = None,
        filter: dict[str, Any] | None = None,
        everything: bool = False,
    ) -> DocumentDeletion:
        """Delete the documents with these sources and/or passing this filter, or with `everything` all of
        them, in one transaction (and one audit row); naming no stored document deletes nothing, no error."""
        selection = Selection.of(sources=sources, filter=filter, everything=everything, required=True)
        ids, op = self.catalog.begin_delete_where(collection, selection)
        if op is not None:
            self.changes.announce({self.catalog.resolve(collection).id})
            self.changes.apply_now()
        return DocumentDeletion(collection=collection, deleted=len(ids), document_ids=ids)

    def vectors(self, collection: str, chunk_ids: Sequence[int]) -> builtins.list[ChunkVector]:
        """The stored vectors of these searchable chunks, in the order asked; unknown ids are left out."""
        return chunk_vectors(self.catalog, collection, chunk_ids)

    def _store(
        self,
        collection: str,
        prepared: builtins.list[PreparedDocument],
        *,
        wait: bool = True,
        on_chunks: ChunkProgressFn | None = None,
        keep_duplicates: bool = False,
        dry_run: bool = False,
    ) -> builtins.list[IngestOutcome]:
        outcomes = self.ingestor.ingest(
            collection, prepared, lease=wait, on_chunks=on_chunks, keep_duplicates=keep_duplicates, dry_run=dry_run
        )
        if dry_run:  # nothing was written: nothing to announce or apply
            return outcomes
        if any(o.status in ("added", "replaced") for o in outcomes):
            self.changes.announce({self.catalog.resolve(collection).id})
            if wait:
                self.changes.apply_now()
                self._refresh_states(outcomes)
            else:
                self.changes.queued()
        return outcomes

    def _refresh_states(self, outcomes: builtins.list[IngestOutcome]) -> None:
        ids = [o.document_id for o in outcomes if o.document_id is not None and o.status in ("added", "replaced")]
        with self.catalog.db.read() as s:
            states = self.catalog.index_states(s, [int(i) for i in ids])
        for o in outcomes:
            if o.document_id in states:
                o.index_state = states[o.document_id]
