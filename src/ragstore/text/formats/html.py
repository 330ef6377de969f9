"""HTML pages: streamed to text by ragstore.text.html, titled by <title>, else the first <h1>."""

from __future__ import annotations

import re
from pathlib import Path

from ragstore.text.document import LoadedDocument
from ragstore.text.encodings import declared_charset, decode_text
from ragstore.text.html import html_to_text
from ragstore.text.limits import LoadBudget
from ragstore.text.titles import first_line_title, structural_title

__all__ = ["load_html"]

_H1 = re.compile(r"^# (.+)$", re.MULTILINE)  # html_to_text writes <h1> as a Markdown heading


def load_html(data: bytes, name: str, mime: str, budget: LoadBudget, encoding: str | None) -> list[LoadedDocument]:
    decoded = decode_text(data, name, encoding, declared=declared_charset(data))
    title, text = html_to_text(decoded.text, budget)
    if not title:
        h1 = _H1.search(text)
        title = h1.group(1) if h1 else ""
    title = structural_title(title) or first_line_title(text, Path(name).stem)
    return [LoadedDocument(name, title, mime, text, len(data), encoding=decoded.encoding)]
