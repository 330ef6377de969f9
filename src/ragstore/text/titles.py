"""Titles from a document's own structure, and a short cut of the first line when it has none.

A title is what a result list shows: a 190-character paragraph is not one. A first line is cut at a word
boundary to at most FIRST_LINE_CHARS characters and marked with "…"; a title the document declares
(HTML <title>, a heading, PDF or docx properties) is kept whole up to MAX_TITLE_CHARS.
"""

from __future__ import annotations

import re
import unicodedata

__all__ = [
    "FIRST_LINE_CHARS",
    "MAX_TITLE_CHARS",
    "first_line_title",
    "markdown_title",
    "rst_title",
    "short_title",
    "structural_title",
]

FIRST_LINE_CHARS = 80
MAX_TITLE_CHARS = 200
_SPACE = re.compile(r"\s+")


def short_title(text: str, limit: int = FIRST_LINE_CHARS) -> str:
    """`text` on one line, cut to at most `limit` characters (the "…" included) at a word boundary."""
    line = _SPACE.sub(" ", text).strip()
    if len(line) <= limit:
        return line
    head = line[: limit - 1]
    cut = head.rfind(" ")
    # No space in the last 40 % (Chinese or Japanese text, a long URL): cut inside the word instead.
    if cut >= limit * 0.6:
        head = head[:cut]
    return head.rstrip(" ,;:.-–—") + "…"


def structural_title(title: str | None) -> str:
    """A declared title on one line and of a sane length ("" when there is none)."""
    return short_title(title, MAX_TITLE_CHARS) if title else ""


def first_line_title(text: str, fallback: str) -> str:
    """The first non-blank line, cut short; `fallback` (the file's stem) when there is no text."""
    for line in text.splitlines():
        line = line.strip().lstrip("#").strip()
        if line:
            return short_title(line)
    return fallback


_ATX = re.compile(r"^\s{0,3}#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)
_SETEXT = re.compile(r"^(\S[^\n]*)\n\s{0,3}(?:=+|-+)\s*$", re.MULTILINE)


def markdown_title(text: str) -> str:
    """The first Markdown heading, `# Title` or an underlined `Title\\n=====`."""
    matches = [m for m in (_ATX.search(text), _SETEXT.search(text)) if m]
    if not matches:
        return ""
    first = min(matches, key=lambda m: m.start())
    return structural_title(first.group(1).strip())


_ADORNMENT = re.compile(r"""^([!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~])\1{2,}\s*$""")


def _width(text: str) -> int:
    """Columns a line takes (East Asian wide characters take two): how reST measures an underline."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def rst_title(text: str) -> str:
    """The reStructuredText document title: the first section heading (a line underlined, optionally
    overlined, with one repeated punctuation character at least as wide as the text)."""
    lines = text.splitlines()
    for i in range(len(lines) - 1):
        title, under = lines[i].strip(), lines[i + 1].rstrip()
        if not title or _ADORNMENT.match(title) or title.startswith(".."):
            continue
        if _ADORNMENT.match(under) and len(under.strip()) >= _width(title):
            return structural_title(title)
    return ""
