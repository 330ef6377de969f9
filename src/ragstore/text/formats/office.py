"""Word documents (.docx, python-docx): paragraphs and tables in document order, titled by the core
properties' title, else the first Title- or Heading-1-styled paragraph.

A .docx is a zip: before python-docx opens it, the archive's directory is checked against the budget (the
members' unpacked sizes, their number, no zip-level encryption), so a zip bomb is refused before one byte
is inflated. An encrypted Word file is not a zip at all but an OLE container, recognised by its signature.
"""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

from ragstore.errors import InvalidInput
from ragstore.text.document import LoadedDocument
from ragstore.text.limits import LoadBudget
from ragstore.text.titles import first_line_title, structural_title

if TYPE_CHECKING:
    from docx.table import Table
    from docx.text.paragraph import Paragraph

__all__ = ["load_docx"]

_OLE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # compound file: an encrypted .docx, or a legacy .doc
_HEADING_STYLE = re.compile(r"^heading (\d)$", re.IGNORECASE)


def _check_archive(data: bytes, name: str, budget: LoadBudget) -> None:
    if data.startswith(_OLE):
        raise InvalidInput(
            f"{name}: is an encrypted (password-protected) Word document or a legacy .doc, not a .docx; "
            "save it unprotected as .docx"
        )
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError) as exc:
        raise InvalidInput(f"{name}: is not a valid .docx file (a corrupt or truncated zip: {exc})") from exc
    if len(members) > budget.limits.max_archive_entries:
        raise InvalidInput(
            f"{name}: a .docx of {len(members):,} zip members is over the limit of "
            f"{budget.limits.max_archive_entries:,}; nothing was stored"
        )
    if any(m.flag_bits & 0x1 for m in members):
        raise InvalidInput(f"{name}: is an encrypted zip; decrypt it before ingesting")
    # zipfile never inflates a member past its declared size, so the declared sizes bound the real work.
    budget.unpacked(sum(m.file_size for m in members), f"the .docx archive ({len(members):,} members)")
    if "word/document.xml" not in {m.filename for m in members}:
        raise InvalidInput(f"{name}: is a zip file but not a Word document (no word/document.xml)")


def _paragraph(par: Paragraph) -> tuple[str, int]:
    """(text, heading level: 0 for body text, 1-6 for Heading N, -1 for the Title style)."""
    text = par.text.strip()
    style = par.style.name if par.style is not None and par.style.name else ""
    if style.lower() == "title":
        return text, -1
    match = _HEADING_STYLE.match(style)
    return text, min(int(match.group(1)), 6) if match else 0


def _table(table: Table, budget: LoadBudget) -> str:
    lines = []
    for row in table.rows:
        budget.check()
        cells: list[str] = []
        for cell in row.cells:
            text = " ".join(cell.text.split())
            if not cells or cells[-1] != text:  # a merged cell is returned once per grid column it spans
                cells.append(text)
        if any(cells):
            lines.append(" | ".join(cells))
    return "\n".join(lines)


def load_docx(data: bytes, name: str, mime: str, budget: LoadBudget, encoding: str | None) -> list[LoadedDocument]:
    import docx
    from docx.opc.exceptions import PackageNotFoundError
    from docx.table import Table

    _check_archive(data, name, budget)
    try:
        document = docx.Document(io.BytesIO(data))
        declared = document.core_properties.title or ""
        parts: list[str] = []
        styled_title = ""
        chars = 0
        for n, block in enumerate(document.iter_inner_content()):
            if n % 256 == 0:
                budget.check()
            if isinstance(block, Table):
                text = _table(block, budget)
            else:
                text, level = _paragraph(block)
                if text and level != 0 and not styled_title and level in (-1, 1):
                    styled_title = text
                if text and level > 0:
                    text = "#" * level + " " + text  # the chunker opens a new chunk at a heading
            if text:
                parts.append(text)
                chars += len(text)
                budget.chars(chars)
    except InvalidInput:
        raise
    except (PackageNotFoundError, KeyError, ValueError, AttributeError, zipfile.BadZipFile, SyntaxError) as exc:
        raise InvalidInput(f"{name}: is a malformed Word document ({type(exc).__name__}: {exc})") from exc
    text = "\n\n".join(parts)
    title = structural_title(declared) or structural_title(styled_title) or first_line_title(text, Path(name).stem)
    return [LoadedDocument(name, title, mime, text, len(data))]
