"""PDF files: the text layer page by page (pypdf), titled by the document's metadata title."""

from __future__ import annotations

import io
from pathlib import Path

from ragstore.errors import InvalidInput, PayloadTooLarge
from ragstore.text.document import LoadedDocument
from ragstore.text.limits import LoadBudget
from ragstore.text.titles import first_line_title, structural_title

__all__ = ["load_pdf"]


def load_pdf(data: bytes, name: str, mime: str, budget: LoadBudget, encoding: str | None) -> list[LoadedDocument]:
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
    title = structural_title(title) or first_line_title(text, Path(name).stem)
    return [LoadedDocument(name, title, mime, text, len(data), {"pages": len(pages)})]
