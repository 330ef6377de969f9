"""HTML to plain text in one streaming pass, in time linear in the page's size.

The page is fed in slices to libxml2's HTML parser (lxml) with a target object instead of a tree: each
start tag, end tag and run of text is one call, and the extractor appends to a list. Nothing is inserted
into a tree (BeautifulSoup's `insert_after` per block made the old loader quadratic: 80k paragraphs took
198 s), nothing recurses (40,000 nested elements cost what 40,000 siblings cost), and libxml2 closes
implied elements (`<p>` after `<p>`, `<li>` after `<li>`) the way a browser does, so the nesting depth we
bound is the page's real one. The stdlib `html.parser` was measured and rejected: `"<a" * 100_000` alone
took 70 s in one `feed()` call (quadratic rescans of an unfinished tag), where no checkpoint can run.
"""

from __future__ import annotations

import re

from lxml import etree

from ragstore.text.limits import LoadBudget

__all__ = ["html_to_text"]

# Dropped with everything inside them (as the BeautifulSoup loader did).
SKIPPED = frozenset({"script", "style", "noscript", "template", "svg"})
# What may sit in <head>; any other start tag means the body has begun (as in a browser).
HEAD_CONTENT = frozenset({"title", "meta", "link", "style", "script", "base", "noscript", "template"})
# Elements whose start and end are paragraph breaks, so the chunker still sees the page's structure.
BLOCKS = frozenset(
    [
        "p",
        "div",
        "section",
        "article",
        "li",
        "tr",
        "br",
        "ul",
        "ol",
        "dl",
        "dt",
        "dd",
        "table",
        "blockquote",
        "pre",
        "header",
        "footer",
        "main",
        "aside",
        "nav",
        "figure",
        "figcaption",
        "form",
        "hr",
        "address",
        "details",
        "summary",
        "fieldset",
    ]
)
HEADINGS = {f"h{i}": i for i in range(1, 7)}
CELLS = frozenset({"td", "th"})
SLICE = 1 << 20  # characters fed per call; a checkpoint runs between slices
CHECK_EVERY = 4096  # parser events between checkpoints


class _Extractor:
    """The parser's target: keeps the text, the first title and the open elements' depth."""

    def __init__(self, budget: LoadBudget) -> None:
        self.budget = budget
        self.parts: list[str] = []
        self.title: list[str] | None = None  # collecting while the first <title> is open
        self.title_text = ""
        self.title_len = 0
        self.depth = 0
        self.skip_at = 0  # depth of the outermost open skipped element (0: none)
        self.in_head = False
        self.head_at = 0
        self.chars = 0
        self.events = 0

    def _tick(self) -> None:
        self.events += 1
        if self.events % CHECK_EVERY == 0:
            self.budget.check()

    def _emit(self, text: str) -> None:
        self.parts.append(text)
        self.chars += len(text)
        if self.chars > self.budget.limits.max_chars:
            self.budget.chars(self.chars)

    def start(self, tag: str, attrib: object) -> None:
        self._tick()
        self.depth += 1
        self.budget.depth(self.depth)
        if self.skip_at:
            return
        if tag in SKIPPED:
            self.skip_at = self.depth
            return
        if tag == "head":
            self.in_head, self.head_at = True, self.depth
            return
        if self.in_head and tag not in HEAD_CONTENT:
            self.in_head = False
        if tag == "title" and self.title is None and not self.title_text:
            self.title = []
            return
        if self.in_head:
            return
        level = HEADINGS.get(tag)
        if level is not None:
            self._emit("\n\n" + "#" * level + " ")
        elif tag in BLOCKS:
            self._emit("\n\n" if tag != "br" else "\n")
        elif tag in CELLS:
            self._emit(" ")

    def end(self, tag: str) -> None:
        self._tick()
        if self.skip_at and self.depth == self.skip_at:
            self.skip_at = 0
        elif not self.skip_at:
            if tag == "title" and self.title is not None:
                self.title_text = re.sub(r"\s+", " ", "".join(self.title)).strip()
                self.title = None
            elif self.in_head and self.depth == self.head_at:
                self.in_head = False
            elif not self.in_head and (tag in HEADINGS or (tag in BLOCKS and tag != "br")):
                self._emit("\n\n")
        self.depth -= 1

    def data(self, text: str) -> None:
        self._tick()
        if self.skip_at:
            return
        if self.title is not None:
            self.title.append(text)
            self.title_len += len(text)
            if self.title_len > 4096:  # a title is a line, not a document
                self.title_text = re.sub(r"\s+", " ", "".join(self.title)).strip()[:200]
                self.title = None
            return
        if not self.in_head:
            self._emit(text)

    def comment(self, text: str) -> None:
        self._tick()

    def close(self) -> None:
        return None


def html_to_text(raw: str, budget: LoadBudget) -> tuple[str, str]:
    """(title, text) of an HTML page; raises the budget's errors when a limit is passed."""
    target = _Extractor(budget)
    # huge_tree lifts libxml2's own depth and text-node limits: ours (the budget's) apply instead, with a
    # clear error rather than a silently truncated page.
    parser = etree.HTMLParser(target=target, recover=True, no_network=True, huge_tree=True, remove_comments=True)
    for start in range(0, len(raw), SLICE):
        budget.check()
        parser.feed(raw[start : start + SLICE])
    parser.close()
    text = re.sub(r"[ \t]+", " ", "".join(target.parts))
    text = re.sub(r"\n\s*\n\s*", "\n\n", text).strip()
    return target.title_text, text
