"""Structured text: JSON and JSON Lines records, CSV tables in row groups, XML element text.

CSV rows are grouped into chunks the format decides (`LoadedDocument.chunks`), each opening with the
header row, so a row found by search still says what its columns are. XML is parsed with defusedxml,
which refuses entity declarations (billion laughs) and external references (XXE) outright.
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from typing import Any
from xml.etree.ElementTree import Element, ParseError

from ragstore.errors import InvalidInput
from ragstore.text.chunking import chunk_text, count_tokens
from ragstore.text.document import LoadedDocument
from ragstore.text.encodings import declared_charset, decode_text
from ragstore.text.limits import LoadBudget
from ragstore.text.titles import first_line_title, structural_title

__all__ = ["load_csv", "load_json", "load_jsonl", "load_xml"]


def _record(obj: Any, name: str, where: str, size: int, mime: str, encoding: str) -> LoadedDocument:
    if not isinstance(obj, dict):
        raise InvalidInput(f'{name}{where}: expected a JSON object with a "text" field, got {type(obj).__name__}')
    text = obj.get("text", obj.get("content"))
    if not isinstance(text, str):
        raise InvalidInput(f'{name}{where}: a JSON document needs a string "text" (or "content") field')
    metadata = obj.get("metadata", {})
    if not isinstance(metadata, dict):
        raise InvalidInput(f'{name}{where}: "metadata" must be a JSON object')
    # A record's own "title" is the caller's, kept as given (as the API keeps DocumentInput.title); only a
    # title worked out from the text is cut short.
    title = str(obj["title"]) if obj.get("title") else first_line_title(text, Path(name).stem)
    return LoadedDocument(name + where, title, mime, text, size, dict(metadata), encoding=encoding)


def load_json(data: bytes, name: str, mime: str, budget: LoadBudget, encoding: str | None) -> list[LoadedDocument]:
    decoded = decode_text(data, name, encoding)
    try:
        obj = json.loads(decoded.text)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"{name}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from exc
    except RecursionError as exc:
        raise InvalidInput(f"{name}: JSON nested too deeply to read") from exc
    if isinstance(obj, list):
        return [_record(item, name, f"#{i}", len(data), mime, decoded.encoding) for i, item in enumerate(obj)]
    return [_record(obj, name, "", len(data), mime, decoded.encoding)]


def load_jsonl(data: bytes, name: str, mime: str, budget: LoadBudget, encoding: str | None) -> list[LoadedDocument]:
    decoded = decode_text(data, name, encoding)
    docs = []
    for lineno, line in enumerate(decoded.text.splitlines()):
        if lineno % 1024 == 0:
            budget.check()
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InvalidInput(f"{name}: invalid JSON on line {lineno + 1}: {exc.msg}") from exc
        except RecursionError as exc:
            raise InvalidInput(f"{name}: JSON on line {lineno + 1} is nested too deeply to read") from exc
        docs.append(_record(obj, name, f"#{lineno}", len(line.encode()), mime, decoded.encoding))
    return docs


# --- CSV -----------------------------------------------------------------------------------------------------

_CELL_SPACE = re.compile(r"\s+")


def _dialect(sample: str) -> type[csv.Dialect] | csv.Dialect:
    try:
        return csv.Sniffer().sniff(sample, delimiters=",;\t|")
    except csv.Error:
        return csv.excel  # one column, or too little to tell: plain comma-separated


def _line(row: list[str]) -> str:
    """A row as one line of text: cells separated by " | ", their own line breaks flattened."""
    return " | ".join(_CELL_SPACE.sub(" ", cell).strip() for cell in row)


def _row_groups(header: str, rows: list[str], chunk_tokens: int, budget: LoadBudget) -> list[str]:
    """Rows in groups of about `chunk_tokens` tokens, each group opening with the header line.

    A row longer than a group on its own is cut by the ordinary chunker, the header before each piece.
    """
    room = max(chunk_tokens - count_tokens(header), chunk_tokens // 2)
    groups: list[str] = []
    current: list[str] = []
    used = 0
    for n, row in enumerate(rows):
        if n % 1024 == 0:
            budget.check()
        tokens = count_tokens(row)
        if tokens > room:
            if current:
                groups.append("\n".join([header, *current]))
                current, used = [], 0
            groups.extend(f"{header}\n{piece.text}" for piece in chunk_text(row, max_tokens=room, overlap_tokens=0))
            continue
        if current and used + tokens > room:
            groups.append("\n".join([header, *current]))
            current, used = [], 0
        current.append(row)
        used += tokens
    if current:
        groups.append("\n".join([header, *current]))
    return groups


def load_csv(data: bytes, name: str, mime: str, budget: LoadBudget, encoding: str | None) -> list[LoadedDocument]:
    decoded = decode_text(data, name, encoding)
    raw = decoded.text
    dialect = _dialect(raw[:65536])
    reader = csv.reader(io.StringIO(raw, newline=""), dialect)
    lines: list[str] = []
    try:
        for n, row in enumerate(reader):
            if n % 1024 == 0:
                budget.check()
            if any(cell.strip() for cell in row):
                lines.append(_line(row))
    except csv.Error as exc:
        raise InvalidInput(f"{name}: is not a readable CSV file (line {reader.line_num}: {exc})") from exc
    if not lines:
        raise InvalidInput(f"{name}: is an empty CSV table (no header and no rows)")
    header, rows = lines[0], lines[1:]
    if not rows:
        raise InvalidInput(f"{name}: is a CSV table with a header row and no data rows")
    text = "\n".join(lines)
    budget.chars(len(text))
    chunks = _row_groups(header, rows, budget.limits.chunk_tokens, budget)
    delimiter = getattr(dialect, "delimiter", ",")
    meta = {"rows": len(rows), "columns": header.count(" | ") + 1, "delimiter": delimiter}
    # A table has no title line: its header names columns, not the document, so the file's name stands in.
    title = Path(name).stem
    return [LoadedDocument(name, title, mime, text, len(data), meta, encoding=decoded.encoding, chunks=chunks)]


# --- XML -----------------------------------------------------------------------------------------------------

_XML_DECLARATION = re.compile(r"^\s*<\?xml[^>]*\?>", re.IGNORECASE)


def _local(tag: object) -> str:
    return tag.rsplit("}", 1)[-1].lower() if isinstance(tag, str) else ""


def _xml_text(root: Element, budget: LoadBudget) -> tuple[str, str]:
    """(title, text): each element's own text on its own line, in document order, without recursion."""
    parts: list[str] = []
    title = ""
    stack: list[tuple[Element, bool]] = [(root, False)]
    steps = 0
    while stack:
        steps += 1
        if steps % 4096 == 0:
            budget.check()
        elem, closing = stack.pop()
        if closing:
            if elem.tail and elem.tail.strip():
                parts.append(elem.tail.strip())
            continue
        if not isinstance(elem.tag, str):  # a comment or processing instruction: its tail is still text
            if elem.tail and elem.tail.strip():
                parts.append(elem.tail.strip())
            continue
        own = (elem.text or "").strip()
        if own:
            parts.append(own)
            if not title and _local(elem.tag) == "title":
                title = own
        stack.append((elem, True))
        stack.extend((child, False) for child in reversed(list(elem)))
    return title, "\n".join(parts)


def load_xml(data: bytes, name: str, mime: str, budget: LoadBudget, encoding: str | None) -> list[LoadedDocument]:
    from defusedxml import DefusedXmlException
    from defusedxml.ElementTree import iterparse

    decoded = decode_text(data, name, encoding, declared=declared_charset(data[:200]))
    # The text is decoded already (and its encoding recorded): the parser gets it as UTF-8, so the
    # declaration, which may name a codec expat does not know (CP949), goes.
    body = _XML_DECLARATION.sub("", decoded.text, count=1).encode("utf-8")
    depth = 0
    root: Element | None = None
    try:
        for n, (event, elem) in enumerate(iterparse(io.BytesIO(body), events=("start", "end"))):
            if n % 4096 == 0:
                budget.check()
            if event == "start":
                depth += 1
                budget.depth(depth, "XML elements")
                if root is None:
                    root = elem
            else:
                depth -= 1
    except DefusedXmlException as exc:
        raise InvalidInput(
            f"{name}: XML with entity declarations or external references is refused ({type(exc).__name__}); "
            "nothing was stored"
        ) from exc
    except ParseError as exc:
        raise InvalidInput(f"{name}: is malformed XML ({exc})") from exc
    if root is None:
        raise InvalidInput(f"{name}: contains no XML element")
    title, text = _xml_text(root, budget)
    title = structural_title(title) or first_line_title(text, Path(name).stem)
    return [LoadedDocument(name, title, mime, text, len(data), {"root": _local(root.tag)}, encoding=decoded.encoding)]
