"""Files into a collection: `store.documents.ingest_paths` and `sync_paths`.

A file is known by its source (text/paths.py `source_for`: the resolved path, or the path under a declared
root), so a file typed relatively one day and absolutely the next stays one document. Its raw bytes are
hashed first; a source whose active document carries the same hash is `unchanged` without being parsed,
chunked or embedded: a sync of a large tree after a few edits reads only the edited files past their hash.
A sync also deletes the documents of files gone from the tree, through the normal (audited) delete path.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import select

from ragstore.db.models import Document, DocumentStatus
from ragstore.documents.ingest import PreparedDocument
from ragstore.documents.progress import IngestProgress, ProgressFn
from ragstore.errors import Forbidden, NotFound, PayloadTooLarge, RagstoreError
from ragstore.schemas import IngestOutcome, IngestReport
from ragstore.text.loaders import load_bytes, mime_for
from ragstore.text.paths import expand_paths, in_scope, resolve_root, scope_for, source_for
from ragstore.valid_text import ascii_digits

if TYPE_CHECKING:
    from ragstore.documents.service import DocumentService

__all__ = ["FileRun", "sync_roots"]

STORED = ("added", "replaced")


@dataclass(frozen=True, slots=True)
class _Known:
    """An active document that came from a file (it has a source hash)."""

    id: int
    source: str
    source_hash: str
    title: str


def _file_of(source: str) -> str:
    """The file a stored source came from: a record of a JSON file is `path#n`."""
    head, sep, tail = source.rpartition("#")
    return head if sep and ascii_digits(tail) else source


@dataclass
class FileRun:
    """One ingest or sync of files; `run()` returns its report. Not reusable."""

    service: DocumentService
    collection: str
    paths: list[str | Path]
    root: str | Path | None = None
    sync: bool = False
    dry_run: bool = False
    keep_duplicates: bool = False
    encoding: str | None = None
    progress: ProgressFn | None = None
    create: Callable[[], object] | None = None  # makes the collection, called before the first store only
    confine_to: tuple[Path, ...] = ()  # when given, every file must resolve to a path under one of these
    batch_size: int = 16  # files stored per transaction,
    batch_chunks: int = 256  # or fewer when their chunks reach this many (a long file is not held back)
    _files_done: int = 0
    _files_total: int = 0
    _embedded: int = 0
    _stored: int = 0
    _known_chunks: int = 0
    _bytes_done: int = 0
    _bytes_total: int = 0
    _current: str = ""
    _present: set[str] = field(default_factory=set)  # file sources seen in the tree this run

    def run(self) -> IngestReport:
        root = resolve_root(self.root)
        files = expand_paths(self.paths)
        if self.confine_to:  # a sync asked over HTTP: a symlink or a glob must not lead outside the allowed folders
            for path in files:
                real = path.resolve()
                if not any(real == r or real.is_relative_to(r) for r in self.confine_to):
                    raise Forbidden(
                        f"{path}: leads outside RAGSTORE_SYNC_ROOTS", details={"setting": "RAGSTORE_SYNC_ROOTS"}
                    )
        sources = [source_for(p, root) for p in files]  # a path outside the root is refused before any work
        scopes = [scope_for(p, root) for p in self.paths] if self.sync else []
        exists = self._collection_exists()
        known = self._known_by_file() if exists else {}
        report = IngestReport(collection=self.collection, dry_run=self.dry_run)
        self._files_total = len(files)
        self._bytes_total = sum(self._size(p) for p in files)
        batch: list[PreparedDocument] = []

        def flush() -> None:
            nonlocal exists
            if not batch:
                return
            created = False
            if not exists and not self.dry_run:
                if self.create is None:
                    self.service.catalog.get_collection(self.collection)  # NotFound, as before
                self.create()  # type: ignore[misc]
                exists = created = True
            if exists:
                try:
                    outcomes = self.service._store(
                        self.collection,
                        list(batch),
                        on_chunks=self._on_chunks,
                        keep_duplicates=self.keep_duplicates,
                        dry_run=self.dry_run,
                    )
                except RagstoreError:
                    if created:  # made for this run, which stored nothing: a failed ingest leaves nothing
                        self._drop_collection()
                    raise
                report.outcomes.extend(outcomes)
                # A document not stored (a duplicate, or its content unchanged) embeds nothing: the chunks the
                # run still expects must not count it, or the bar would never reach its total.
                self._known_chunks -= sum(
                    len(d.chunk_texts) for d, o in zip(batch, outcomes, strict=True) if o.status not in STORED
                )
            else:  # a dry run into a collection that does not exist yet: everything would be new
                report.outcomes.extend(
                    IngestOutcome(
                        source_uri=d.loaded.source_uri, status="added", title=d.loaded.title, chunks=len(d.chunk_texts)
                    )
                    for d in batch
                )
            batch.clear()
            self._emit()

        first = True  # the first file read is stored alone: a document is searchable within a file's time
        for path, source in zip(files, sources, strict=True):
            self._current = str(path)
            self._present.add(source)
            report.outcomes.extend(self._read(path, source, known.get(source, []), batch))
            if batch and (
                first or len(batch) >= self.batch_size or sum(len(d.chunk_texts) for d in batch) >= self.batch_chunks
            ):
                flush()
                first = False
            self._files_done += 1
            self._bytes_done += self._size(path)
            self._emit()
        flush()
        if self.sync:
            report.outcomes.extend(self._deletions(known, scopes, root))
            self._emit()
        return report

    # -- one file ------------------------------------------------------------------------------------------
    def _read(self, path: Path, source: str, known: list[_Known], batch: list[PreparedDocument]) -> list[IngestOutcome]:
        """Hash the file; if its source's document holds these bytes, `unchanged`; else parse and chunk it
        into `batch`. Returns the file's outcomes when they are decided here (unchanged, failed)."""
        service = self.service
        try:
            mime_for(path.name)  # an unsupported type is refused before reading a possibly huge file
            size = path.stat().st_size
            if size > service.max_document_bytes:
                raise PayloadTooLarge(
                    f"{path}: {size:,} bytes is over the limit of {service.max_document_bytes:,} bytes "
                    "(RAGSTORE_MAX_DOCUMENT_BYTES)"
                )
            data = path.read_bytes()
            digest = hashlib.sha256(data).hexdigest()
            same = [k for k in known if k.source_hash == digest]
            if same and len(same) == len(known):  # every document of the file (a JSON file's records) as it was
                return [
                    IngestOutcome(source_uri=k.source, status="unchanged", document_id=k.id, title=k.title)
                    for k in same
                ]
            loads = load_bytes(
                data,
                str(path),
                max_bytes=service.max_document_bytes,
                limits=service.limits,
                clock=service.clock,
                stopping=service.stopping,
                encoding=self.encoding,
            )
            prepared = []
            for loaded in loads:
                loaded.source_uri = source + loaded.source_uri[len(str(path)) :]
                prepared.append(service.ingestor.prepare(loaded))
        except OSError as exc:
            return [IngestOutcome(source_uri=source, status="failed", error=f"{path}: {exc.strerror or exc}")]
        except RagstoreError as exc:
            return [IngestOutcome(source_uri=source, status="failed", error=exc.message)]
        batch.extend(prepared)
        self._known_chunks += sum(len(d.chunk_texts) for d in prepared)
        return []

    def _deletions(self, known: dict[str, list[_Known]], scopes: list[str], root: Path | None) -> list[IngestOutcome]:
        """The documents of files in the sync's scope that are no longer in the tree: deleted (audited, through
        the outbox), or, in a dry run, reported as they would be."""
        gone = [
            k
            for file_source, docs in sorted(known.items())
            if file_source not in self._present and any(in_scope(file_source, sc, root) for sc in scopes)
            for k in docs
        ]
        outcomes = []
        for k in gone:
            if not self.dry_run:
                with contextlib.suppress(NotFound):  # deleted meanwhile by someone else: gone all the same
                    self.service.delete(self.collection, k.id)
            outcomes.append(IngestOutcome(source_uri=k.source, status="deleted", document_id=k.id, title=k.title))
        return outcomes

    def _drop_collection(self) -> None:
        """Drop the collection this run created (audited, through the outbox, as `collections.delete` does)."""
        collection_id = self.service.catalog.begin_drop_collection(self.collection)
        self.service.changes.announce({collection_id})
        self.service.changes.apply_now()

    # -- state ---------------------------------------------------------------------------------------------
    def _collection_exists(self) -> bool:
        try:
            self.service.catalog.get_collection(self.collection)
        except NotFound:
            if self.create is None and not self.dry_run:
                raise
            return False
        return True

    def _known_by_file(self) -> dict[str, list[_Known]]:
        """The collection's active documents that came from files, by the file's source."""
        catalog = self.service.catalog
        found: dict[str, list[_Known]] = {}
        with catalog.db.read() as s:
            coll = catalog.get_row(s, self.collection)
            rows = s.execute(
                select(Document.id, Document.source_uri, Document.source_hash, Document.title).where(
                    Document.collection_id == coll.id,
                    Document.status == DocumentStatus.ACTIVE,
                    Document.source_hash.is_not(None),
                )
            )
            for doc_id, source, source_hash, title in rows:
                found.setdefault(_file_of(source), []).append(_Known(int(doc_id), source, str(source_hash), title))
        return found

    @staticmethod
    def _size(path: Path) -> int:
        try:
            return path.stat().st_size
        except OSError:
            return 0

    # -- progress ------------------------------------------------------------------------------------------
    def _on_chunks(self, what: str, n: int) -> None:
        if what == "embedded":
            self._embedded += n
        elif what == "stored":
            self._stored += n
        self._emit()

    def _emit(self) -> None:
        if self.progress is not None:
            self.progress(
                IngestProgress(
                    files_done=self._files_done,
                    files_total=self._files_total,
                    chunks_embedded=self._embedded,
                    chunks_stored=self._stored,
                    chunks_known=self._known_chunks,
                    bytes_done=self._bytes_done,
                    bytes_total=self._bytes_total,
                    current=self._current,
                )
            )


def sync_roots(setting: str) -> tuple[Path, ...]:
    """The folders of RAGSTORE_SYNC_ROOTS (comma-separated), resolved: where a sync asked over HTTP may read."""
    return tuple(Path(part.strip()).resolve() for part in setting.split(",") if part.strip())
