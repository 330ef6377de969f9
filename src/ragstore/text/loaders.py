"""Loaders: turn a file's bytes into documents of plain text, or say clearly why they cannot.

This module picks the format module (ragstore.text.formats.*) a file's type names and applies what every
format shares: the size limit, transparent `.gz`, the budget, the hash of the raw bytes, normalised text.
Each format refuses what it cannot read honestly (binary bytes behind a text extension, invalid JSON, a PDF
without a text layer, XML with entity declarations) rather than storing garbage that would later surface
in search results.
"""

from __future__ import annotations

import hashlib
import mimetypes
import threading
from collections.abc import Callable
from pathlib import Path

from ragstore.clock import SYSTEM_CLOCK, Clock
from ragstore.errors import InvalidInput, PayloadTooLarge, UnsupportedMediaType
from ragstore.telemetry import INGEST_STAGE_DURATION
from ragstore.text.document import LoadedDocument
from ragstore.text.formats.compressed import gunzip
from ragstore.text.formats.gettext import load_po
from ragstore.text.formats.html import load_html
from ragstore.text.formats.office import load_docx
from ragstore.text.formats.pdf import load_pdf
from ragstore.text.formats.plain import load_plain
from ragstore.text.formats.structured import load_csv, load_json, load_jsonl, load_xml
from ragstore.text.hashing import normalize_text
from ragstore.text.limits import DEFAULT_LIMITS, LoadBudget, LoadLimits

__all__ = ["SUPPORTED_EXTENSIONS", "LoadLimits", "LoadedDocument", "load_bytes", "load_path", "mime_for"]

DOCX_MIME = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
GZIP_EXT = ".gz"

MIME_BY_EXT = {
    ".txt": "text/plain",
    ".md": "text/markdown",
    ".markdown": "text/markdown",
    ".rst": "text/x-rst",
    ".html": "text/html",
    ".htm": "text/html",
    ".pdf": "application/pdf",
    ".json": "application/json",
    ".jsonl": "application/x-ndjson",
    ".ndjson": "application/x-ndjson",
    ".csv": "text/csv",
    ".xml": "application/xml",
    ".docx": DOCX_MIME,
    ".po": "text/x-gettext",
    ".pot": "text/x-gettext",
}
# Folder scans take these; `name.ext.gz` counts when `.ext` is one of them (see `is_supported`).
SUPPORTED_EXTENSIONS = (*MIME_BY_EXT, GZIP_EXT)
EXT_BY_MIME = {mime: ext for ext, mime in reversed(MIME_BY_EXT.items())}
EXT_BY_MIME.update(
    {
        "text/x-markdown": ".md",
        "application/jsonl": ".jsonl",
        "application/x-jsonlines": ".jsonl",
        "text/xml": ".xml",
        "text/x-po": ".po",
        "application/x-gettext": ".po",
        "text/prs.fallenstein.rst": ".rst",
        "application/csv": ".csv",
    }
)

Loader = Callable[[bytes, str, str, LoadBudget, str | None], list[LoadedDocument]]
_LOADERS: dict[str, Loader] = {
    "text/plain": load_plain,
    "text/markdown": load_plain,
    "text/x-rst": load_plain,
    "text/html": load_html,
    "application/pdf": load_pdf,
    "application/json": load_json,
    "application/x-ndjson": load_jsonl,
    "text/csv": load_csv,
    "application/xml": load_xml,
    DOCX_MIME: load_docx,
    "text/x-gettext": load_po,
}


def is_supported(path: Path) -> bool:
    """Whether a folder scan takes this file: a supported extension, or `.gz` over one."""
    suffix = path.suffix.lower()
    if suffix == GZIP_EXT:
        return Path(path.stem).suffix.lower() in MIME_BY_EXT
    return suffix in MIME_BY_EXT


def _unsupported(name: str, ext: str, declared: str | None) -> UnsupportedMediaType:
    guessed = mimetypes.guess_type(name)[0] or (declared or "").split(";")[0].strip().lower() or "unknown"
    return UnsupportedMediaType(
        f"{name}: unsupported file type {ext or guessed!r}; supported: {', '.join(SUPPORTED_EXTENSIONS)} "
        "(.gz over any of the others)",
        details={"source": name, "type": ext or guessed},
    )


def mime_for(name: str, declared: str | None = None) -> tuple[str, str]:
    """(extension, MIME type) for a file name, falling back to a declared content type.

    For `name.ext.gz` it is the inner file's: (".ext", its type); `.gz` over anything else is refused.
    """
    ext = Path(name).suffix.lower()
    if ext == GZIP_EXT:
        inner = Path(Path(name).stem).suffix.lower()
        if inner in MIME_BY_EXT:
            return inner, MIME_BY_EXT[inner]
        raise _unsupported(name, inner + ext if inner else ext, declared)
    if ext in MIME_BY_EXT:
        return ext, MIME_BY_EXT[ext]
    base = (declared or "").split(";")[0].strip().lower()
    if base in EXT_BY_MIME:
        return EXT_BY_MIME[base], base
    raise _unsupported(name, ext, declared)


def _too_large(name: str, size: int, max_bytes: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"{name}: {size:,} bytes is over the limit of {max_bytes:,} bytes (RAGSTORE_MAX_DOCUMENT_BYTES)",
        details={"source": name, "limit": "RAGSTORE_MAX_DOCUMENT_BYTES"},
    )


def load_bytes(
    data: bytes,
    name: str,
    *,
    max_bytes: int,
    content_type: str | None = None,
    limits: LoadLimits = DEFAULT_LIMITS,
    clock: Clock = SYSTEM_CLOCK,
    stopping: threading.Event | None = None,
    encoding: str | None = None,
) -> list[LoadedDocument]:
    """Parse one file's bytes; raises InvalidInput (or a subclass) naming the file and the problem.

    `limits` bound what the file may cost (pages, nesting, characters, seconds on `clock`); `stopping`
    is the store's shutdown event, which ends the work at the next checkpoint (Unavailable). `encoding`
    decodes a text format strictly with that encoding instead of detecting one.
    """
    with INGEST_STAGE_DURATION.labels("load").time():
        return _load_bytes(data, name, max_bytes, content_type, limits, clock, stopping, encoding)


def _load_bytes(
    data: bytes,
    name: str,
    max_bytes: int,
    content_type: str | None,
    limits: LoadLimits,
    clock: Clock,
    stopping: threading.Event | None,
    encoding: str | None,
) -> list[LoadedDocument]:
    _, mime = mime_for(name, content_type)
    if len(data) > max_bytes:
        raise _too_large(name, len(data), max_bytes)
    if not data.strip():
        raise InvalidInput(f"{name}: is empty")
    budget = LoadBudget(name, limits, clock=clock, stopping=stopping, max_bytes=max_bytes)
    budget.check()
    content = data
    compressed = Path(name).suffix.lower() == GZIP_EXT
    if compressed:
        content = gunzip(data, name, budget)
        if not content.strip():
            raise InvalidInput(f"{name}: is empty once unpacked")
    docs = _LOADERS[mime](content, name, mime, budget, encoding)
    budget.chars(sum(len(doc.text) for doc in docs))
    source_hash = hashlib.sha256(data).hexdigest()  # the file's raw bytes, compressed or not: what sync compares
    for doc in docs:
        doc.source_hash = source_hash
        if compressed:
            doc.metadata = {**doc.metadata, "compression": "gzip"}
        doc.text = normalize_text(doc.text)
        if not doc.text:
            raise InvalidInput(f"{doc.source_uri}: contains no text")
    if not docs:
        raise InvalidInput(f"{name}: contains no documents")
    return docs


def load_path(
    path: Path,
    *,
    max_bytes: int,
    limits: LoadLimits = DEFAULT_LIMITS,
    clock: Clock = SYSTEM_CLOCK,
    stopping: threading.Event | None = None,
    encoding: str | None = None,
) -> list[LoadedDocument]:
    mime_for(path.name)  # refuse an unsupported type before reading a possibly huge file
    size = path.stat().st_size
    if size > max_bytes:
        raise _too_large(str(path), size, max_bytes)
    return load_bytes(
        path.read_bytes(),
        str(path),
        max_bytes=max_bytes,
        limits=limits,
        clock=clock,
        stopping=stopping,
        encoding=encoding,
    )
