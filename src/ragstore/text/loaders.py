"""Loaders: turn a file's bytes into documents of plain text, or say clearly why they cannot.

Each loader refuses what it cannot read honestly (binary bytes behind a text extension, invalid JSON,
a PDF without a text layer) rather than storing garbage that would later surface in search results.
"""

from __future__ import annotations

import hashlib
import io
import json
import mimetypes
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ragstore.clock import SYSTEM_CLOCK, Clock
from ragstore.errors import InvalidInput, PayloadTooLarge, UnsupportedMediaType
from ragstore.text.hashing import normalize_text
from ragstore.text.html import html_to_text
from ragstore.text.limits import DEFAULT_LIMITS, LoadBudget, LoadLimits

__all__ = ["SUPPORTED_EXTENSIONS", "LoadLimits", "LoadedDocument", "load_bytes", "load_path", "mime_for"]


@dataclass
class LoadedDocument:
    source_uri: str
    title: str
    mime_type: str
    text: str
    size_bytes: int
    metadata: dict[str, Any] = field(default_factory=dict)
    encoding: str | None = None  # the text encoding a file was decoded from (documents.encoding)
    source_hash: str | None = None  # SHA-256 of the file's raw bytes (documents.source_hash): what sync compares


MIME_BY_EXT = {
    ".txt": "text/plain",
    ".md": "text/markdown",
    ".markdown": "text/markdown",
    ".html": "text/html",
    ".htm": "text/html",
    ".pdf": "application/pdf",
    ".json": "application/json",
    ".jsonl": "application/x-ndjson",
    ".ndjson": "application/x-ndjson",
}
SUPPORTED_EXTENSIONS = tuple(MIME_BY_EXT)
EXT_BY_MIME = {mime: ext for ext, mime in reversed(MIME_BY_EXT.items())}
EXT_BY_MIME.update({"text/x-markdown": ".md", "application/jsonl": ".jsonl", "application/x-jsonlines": ".jsonl"})


def mime_for(name: str, declared: str | None = None) -> tuple[str, str]:
    """(extension, MIME type) for a file name, falling back to a declared content type."""
    ext = Path(name).suffix.lower()
    if ext in MIME_BY_EXT:
        return ext, MIME_BY_EXT[ext]
    base = (declared or "").split(";")[0].strip().lower()
    if base in EXT_BY_MIME:
        return EXT_BY_MIME[base], base
    guessed = mimetypes.guess_type(name)[0] or base or "unknown"
    raise UnsupportedMediaType(
        f"{name}: unsupported file type {ext or guessed!r}; supported: {', '.join(SUPPORTED_EXTENSIONS)}",
        details={"source": name, "type": ext or guessed},
    )


def _decode_text(data: bytes, name: str, encoding: str | None = None) -> str:
    if b"\x00" in data[:65536]:
        raise InvalidInput(f"{name}: looks like a binary file (it contains NUL bytes), not text")
    try:
        text = data.decode(encoding or "utf-8-sig")
    except LookupError as exc:
        raise InvalidInput(f"{name}: unknown text encoding {encoding!r}") from exc
    except UnicodeDecodeError as exc:
        raise InvalidInput(
            f"{name}: is not valid {encoding or 'UTF-8'} text (invalid byte at offset {exc.start})"
        ) from exc
    controls = sum(1 for ch in text[:65536] if ord(ch) < 32 and ch not in "\n\r\t\f")
    if controls > max(8, len(text[:65536]) // 100):
        raise InvalidInput(f"{name}: looks like a binary file ({controls} control characters), not text")
    return text


_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)


def _first_line_title(text: str, fallback: str) -> str:
    for line in text.splitlines():
        line = line.strip().lstrip("#").strip()
        if line:
            return line[:200]
    return fallback


def _load_plain(data: bytes, name: str, mime: str, budget: LoadBudget, encoding: str | None) -> list[LoadedDocument]:
    text = _decode_text(data, name, encoding)
    if mime == "text/markdown":
        match = _HEADING.search(text)
        title = match.group(1).strip() if match else _first_line_title(text, Path(name).stem)
    else:
        title = _first_line_title(text, Path(name).stem)
    return [LoadedDocument(name, title, mime, text, len(data))]


def _load_html(data: bytes, name: str, mime: str, budget: LoadBudget, encoding: str | None) -> list[LoadedDocument]:
    title, text = html_to_text(_decode_text(data, name, encoding), budget)
    return [LoadedDocument(name, title or _first_line_title(text, Path(name).stem), mime, text, len(data))]


def _load_pdf(data: bytes, name: str, mime: str, budget: LoadBudget, encoding: str | None) -> list[LoadedDocument]:
    from pypdf import PdfReader
    from pypdf.errors import LimitReachedError, PdfReadError

    if not data.startswith(b"%PDF"):
        raise InvalidInput(f"{name}: is not a PDF file (no %PDF header)")
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            raise InvalidInput(f"{name}: is an encrypted PDF; decrypt it before ingesting")
        budget.pages(len(reader.pages))
        pages: list[str] = []
        chars = 0
        for page in reader.pages:
            budget.check()
            # extract_text swallows pypdf's decompression limit and returns "": decoding the content
            # first lets a flate bomb surface as the LimitReachedError it is.
            contents = page.get_contents()
            if contents is not None:
                contents.get_data()
            pages.append((page.extract_text() or "").strip())
            chars += len(pages[-1])
            budget.chars(chars)
        title = ""
        if reader.metadata is not None and reader.metadata.title:
            title = str(reader.metadata.title)
    except InvalidInput:
        raise
    except LimitReachedError as exc:
        # pypdf's own guards (a flate bomb, a page tree of millions of pages, ...): the file is built to
        # cost more than any honest document.
        raise PayloadTooLarge(
            f"{name}: the PDF exceeds a safety limit of the PDF reader ({exc}); nothing was stored",
            details={"source": name, "limit": "pdf_reader"},
        ) from exc
    except (PdfReadError, ValueError, KeyError, TypeError, RecursionError) as exc:
        raise InvalidInput(f"{name}: is a malformed PDF ({exc})") from exc
    text = "\n\n".join(p for p in pages if p)
    meta = {"pages": len(pages)}
    return [LoadedDocument(name, title or _first_line_title(text, Path(name).stem), mime, text, len(data), meta)]


def _record(obj: Any, name: str, where: str, size: int, mime: str) -> LoadedDocument:
    if not isinstance(obj, dict):
        raise InvalidInput(f'{name}{where}: expected a JSON object with a "text" field, got {type(obj).__name__}')
    text = obj.get("text", obj.get("content"))
    if not isinstance(text, str):
        raise InvalidInput(f'{name}{where}: a JSON document needs a string "text" (or "content") field')
    metadata = obj.get("metadata", {})
    if not isinstance(metadata, dict):
        raise InvalidInput(f'{name}{where}: "metadata" must be a JSON object')
    title = obj.get("title") or _first_line_title(text, Path(name).stem)
    return LoadedDocument(name + where, str(title), mime, text, size, dict(metadata))


def _load_json(data: bytes, name: str, mime: str, budget: LoadBudget, encoding: str | None) -> list[LoadedDocument]:
    raw = _decode_text(data, name, encoding)
    try:
        obj = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"{name}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from exc
    if isinstance(obj, list):
        return [_record(item, name, f"#{i}", len(data), mime) for i, item in enumerate(obj)]
    return [_record(obj, name, "", len(data), mime)]


def _load_jsonl(data: bytes, name: str, mime: str, budget: LoadBudget, encoding: str | None) -> list[LoadedDocument]:
    raw = _decode_text(data, name, encoding)
    docs = []
    for lineno, line in enumerate(raw.splitlines()):
        if lineno % 1024 == 0:
            budget.check()
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InvalidInput(f"{name}: invalid JSON on line {lineno + 1}: {exc.msg}") from exc
        docs.append(_record(obj, name, f"#{lineno}", len(line.encode()), mime))
    return docs


_LOADERS: dict[str, Callable[[bytes, str, str, LoadBudget, str | None], list[LoadedDocument]]] = {
    "text/plain": _load_plain,
    "text/markdown": _load_plain,
    "text/html": _load_html,
    "application/pdf": _load_pdf,
    "application/json": _load_json,
    "application/x-ndjson": _load_jsonl,
}


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
    decodes a text format with that encoding instead of UTF-8.
    """
    _, mime = mime_for(name, content_type)
    if len(data) > max_bytes:
        raise PayloadTooLarge(
            f"{name}: {len(data):,} bytes is over the limit of {max_bytes:,} bytes (RAGSTORE_MAX_DOCUMENT_BYTES)"
        )
    if not data.strip():
        raise InvalidInput(f"{name}: is empty")
    budget = LoadBudget(name, limits, clock=clock, stopping=stopping)
    budget.check()
    docs = _LOADERS[mime](data, name, mime, budget, encoding)
    budget.chars(sum(len(doc.text) for doc in docs))
    source_hash = hashlib.sha256(data).hexdigest()
    for doc in docs:
        doc.source_hash = source_hash
        if mime != "application/pdf":
            doc.encoding = (encoding or "utf-8").lower()
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
        raise PayloadTooLarge(
            f"{path}: {size:,} bytes is over the limit of {max_bytes:,} bytes (RAGSTORE_MAX_DOCUMENT_BYTES)"
        )
    return load_bytes(
        path.read_bytes(),
        str(path),
        max_bytes=max_bytes,
        limits=limits,
        clock=clock,
        stopping=stopping,
        encoding=encoding,
    )
