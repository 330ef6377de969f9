"""The HTML loader on 1, 5 and 20 MB pages: the streaming loader, the old BeautifulSoup one, and a parser floor.

    python bench/html_loader.py [--sizes 1,5,20] [--old-timeout 60]

Pages are generated: sections of headings, paragraphs with inline markup, nested divs and lists, a table
row now and then, scripts and styles to drop. For each size, in the same run:

* `new` — `ragstore.text.loaders.load_bytes` (lxml target parser, text/html.py), with limits lifted;
* `old` — the BeautifulSoup loader as it was before issue #15 (copied below), in a subprocess killed after
  `--old-timeout` seconds (shown as ">N s"; a size after a timed-out one is not tried);
* `lxml floor` — libxml2's HTML parser feeding a target that does nothing (what parsing alone costs);
* `html.parser floor` — the stdlib parser with no handlers (what BeautifulSoup's parser alone costs).

Each figure is the best of `--repeat` runs (one run for the old loader).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import re
import time
from html.parser import HTMLParser
from typing import Any

from lxml import etree
from rich.console import Console
from rich.table import Table

from ragstore.text.limits import LoadLimits
from ragstore.text.loaders import load_bytes

console = Console(width=160)
MB = 1024 * 1024


def page(size: int) -> bytes:
    """A realistic page of about `size` bytes."""
    out = [
        "<!doctype html><html><head><title>Generated manual</title><style>p{margin:0}</style>",
        "<script>window.analytics = {id: 1};</script></head><body><nav><a href='/'>Home</a></nav>",
    ]
    total, i = sum(map(len, out)), 0
    while total < size:
        s = (
            f"<section id='s{i}'><h2>Section {i}: configuring the store</h2>"
            f"<div class='card'><div class='body'><p>Paragraph {i} explains <b>how</b> the <a href='/d/{i}'>backup"
            f"</a> is verified &amp; restored, with <code>ragstore check</code> afterwards.</p>"
            f"<p>Second paragraph of section {i}: 전세 계약을 갱신할 때 확인할 사항을 정리합니다.</p></div></div>"
            f"<ul><li>first item {i}</li><li>second item with <em>emphasis</em></li><li>third</li></ul>"
            + (f"<table><tr><td>cell {i}</td><td>value</td></tr></table>" if i % 5 == 0 else "")
            + ("<script>track();</script>" if i % 7 == 0 else "")
            + "</section>\n"
        )
        out.append(s)
        total += len(s)
        i += 1
    out.append("</body></html>")
    return "".join(out).encode()


def old_loader(data: bytes) -> str:
    """The loader before issue #15 (text/loaders.py `_load_html`): one `insert_after` per block."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(data.decode("utf-8"), "html.parser")
    for tag in soup(["script", "style", "noscript", "template", "svg"]):
        tag.decompose()
    if soup.head:
        soup.head.decompose()
    for block in soup.find_all(
        ["p", "div", "section", "article", "li", "tr", "br", "h1", "h2", "h3", "h4", "h5", "h6"]
    ):
        if block.name and block.name.startswith("h") and len(block.name) == 2:
            block.insert_before("\n\n" + "#" * int(block.name[1]) + " ")
        block.insert_after("\n\n")
    text = re.sub(r"[ \t]+", " ", soup.get_text())
    return re.sub(r"\n\s*\n\s*", "\n\n", text).strip()


def _old_child(data: bytes, out: Any) -> None:
    started = time.perf_counter()
    old_loader(data)
    out.put(time.perf_counter() - started)


def time_old(data: bytes, timeout: float) -> float | None:
    """Seconds the old loader took, or None when it was still running after `timeout`."""
    ctx = mp.get_context("fork")
    out = ctx.Queue()
    child = ctx.Process(target=_old_child, args=(data, out))
    child.start()
    child.join(timeout)
    if child.is_alive():
        child.kill()
        child.join()
        return None
    return float(out.get())


class _Nothing:
    def start(self, tag: str, attrib: object) -> None: ...
    def end(self, tag: str) -> None: ...
    def data(self, text: str) -> None: ...
    def close(self) -> None: ...


def lxml_floor(data: bytes) -> None:
    parser = etree.HTMLParser(target=_Nothing(), huge_tree=True, no_network=True)
    text = data.decode("utf-8")
    for start in range(0, len(text), MB):
        parser.feed(text[start : start + MB])
    parser.close()


def stdlib_floor(data: bytes) -> None:
    parser = HTMLParser()
    parser.feed(data.decode("utf-8"))
    parser.close()


def best(fn: Any, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1,5,20")
    ap.add_argument("--old-timeout", type=float, default=60.0)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    limits = LoadLimits(max_chars=10**9, timeout_s=86_400)
    table = Table(title="HTML loader: seconds per page (best of runs)")
    for col in ("page", "blocks", "new", "old (bs4)", "old / new", "lxml floor", "new / lxml", "html.parser floor"):
        table.add_column(col, justify="right")
    old_gave_up = False
    for size_mb in (float(s) for s in args.sizes.split(",")):
        data = page(int(size_mb * MB))
        blocks = data.count(b"<p>") + data.count(b"<div") + data.count(b"<li>") + data.count(b"<h2>")
        new = best(lambda d=data: load_bytes(d, "page.html", max_bytes=len(d) + 1, limits=limits), args.repeat)
        floor = best(lambda d=data: lxml_floor(d), args.repeat)
        stdlib = best(lambda d=data: stdlib_floor(d), 1)
        old = None if old_gave_up else time_old(data, args.old_timeout)
        old_gave_up = old is None
        table.add_row(
            f"{len(data) / MB:.1f} MB",
            f"{blocks:,}",
            f"{new:.2f} s",
            f"{old:.2f} s" if old is not None else f">{args.old_timeout:g} s",
            f"{old / new:.1f}x" if old is not None else f">{args.old_timeout / new:.0f}x",
            f"{floor:.2f} s",
            f"{new / floor:.2f}x",
            f"{stdlib:.2f} s",
        )
        console.print(f"{size_mb:g} MB done", style="dim")
    console.print(table)


if __name__ == "__main__":
    main()
