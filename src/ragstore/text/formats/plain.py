"""Plain text, Markdown and reStructuredText: decoded as they are, titled by their first heading."""

from __future__ import annotations

from pathlib import Path

from ragstore.text.document import LoadedDocument
from ragstore.text.encodings import decode_text
from ragstore.text.limits import LoadBudget
from ragstore.text.titles import first_line_title, markdown_title, rst_title

__all__ = ["load_plain"]


def load_plain(data: bytes, name: str, mime: str, budget: LoadBudget, encoding: str | None) -> list[LoadedDocument]:
    decoded = decode_text(data, name, encoding)
    text = decoded.text
    title = ""
    if mime == "text/markdown":
        title = markdown_title(text)
    elif mime == "text/x-rst":
        title = rst_title(text)
    title = title or first_line_title(text, Path(name).stem)
    return [LoadedDocument(name, title, mime, text, len(data), encoding=decoded.encoding)]
