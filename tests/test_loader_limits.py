"""The loaders' cost bounds: linear HTML, per-file limits, a deadline that stops the work, and shutdown."""

from __future__ import annotations

import threading
import time
import zlib

import pytest

from ragstore.clock import ManualClock
from ragstore.errors import InvalidInput, PayloadTooLarge, Unavailable
from ragstore.service import RagStore
from ragstore.text.limits import LoadLimits
from ragstore.text.loaders import load_bytes

from conftest import CountingEmbedder
from pdf_builders import raw_pdf

LIMIT = 64 * 1024 * 1024


class TickingClock(ManualClock):
    """A manual clock that moves one second every time it is read: each checkpoint costs a 'second'."""

    def monotonic(self) -> float:
        self.advance(1.0)
        return super().monotonic()


def _paragraphs(n: int) -> bytes:
    return ("<html><body>" + "".join(f"<p>paragraph {i} text</p>" for i in range(n)) + "</body></html>").encode()


def _best_time(data: bytes, limits: LoadLimits = LoadLimits()) -> float:
    times = []
    for _ in range(2):
        started = time.perf_counter()
        load_bytes(data, "page.html", max_bytes=LIMIT, limits=limits)
        times.append(time.perf_counter() - started)
    return min(times)


def test_html_time_grows_linearly_with_the_number_of_blocks() -> None:
    small, large = _best_time(_paragraphs(20_000)), _best_time(_paragraphs(80_000))
    # 4x the blocks: linear is ~4x, the old quadratic loader was ~15x (13.5 s against 198 s).
    assert large / small < 8, (small, large)
    assert large < 10


def test_deeply_nested_divs_are_fast_and_never_recurse() -> None:
    data = ("<div>" * 40_000 + "deep text" + "</div>" * 40_000).encode()
    started = time.perf_counter()
    [doc] = load_bytes(data, "deep.html", max_bytes=LIMIT, limits=LoadLimits(max_depth=100_000))
    assert time.perf_counter() - started < 10  # the old loader took 64 s
    assert doc.text == "deep text"


def test_nesting_over_the_limit_is_refused_naming_file_and_limit() -> None:
    data = ("<div>" * 600 + "x" + "</div>" * 600).encode()
    with pytest.raises(InvalidInput, match="RAGSTORE_MAX_HTML_DEPTH") as excinfo:
        load_bytes(data, "nested.html", max_bytes=LIMIT)
    assert "nested.html" in excinfo.value.message and excinfo.value.http_status == 422


def test_implied_end_tags_do_not_count_as_nesting() -> None:
    # Unclosed <p> and <li> are valid HTML: each closes the one before, as in a browser.
    data = ("<body>" + "<p>para" * 5_000 + "<ul>" + "<li>item" * 5_000 + "</ul>").encode()
    [doc] = load_bytes(data, "flat.html", max_bytes=LIMIT, limits=LoadLimits(max_depth=16))
    assert doc.text.count("para") == 5_000 and "\n\npara\n\npara" in doc.text


def test_html_keeps_structure_title_and_drops_scripts() -> None:
    html = b"""<html><head><title> Rate
    limits </title><style>p{}</style><script>x = "secret"</script></head><body><nav>Home</nav>
    <h2>Limits</h2><p>One &amp; two.</p><ul><li>a<li>b</ul><table><tr><td>c1<td>c2</table>
    <svg><text>drawn</text></svg><noscript>enable js</noscript><p>end</p></body></html>"""
    [doc] = load_bytes(html, "page.html", max_bytes=LIMIT)
    assert doc.title == "Rate limits"
    assert doc.text == "Home\n\n## Limits\n\nOne & two.\n\na\n\nb\n\nc1 c2\n\nend"


def test_body_content_inside_an_unclosed_head_is_kept() -> None:
    [doc] = load_bytes(b"<html><head><title>T</title><p>body text", "h.html", max_bytes=LIMIT)
    assert (doc.title, doc.text) == ("T", "body text")


@pytest.mark.parametrize(
    ("data", "name"),
    [
        (_paragraphs(2_000), "many.html"),
        (b"word " * 5_000, "long.txt"),
        (b'{"text": "' + b"x" * 30_000 + b'"}', "a.json"),
    ],
)
def test_extracted_characters_over_the_limit_are_refused(data: bytes, name: str) -> None:
    with pytest.raises(PayloadTooLarge, match="RAGSTORE_MAX_EXTRACTED_CHARS") as excinfo:
        load_bytes(data, name, max_bytes=LIMIT, limits=LoadLimits(max_chars=20_000))
    assert name in excinfo.value.message and excinfo.value.http_status == 413


def _pdf(pages: int) -> bytes:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_font("helvetica", size=12)
    for i in range(pages):
        pdf.add_page()
        pdf.cell(0, 10, f"Page {i} of the manual.")
    return bytes(pdf.output())


def test_pdf_pages_over_the_limit_are_refused() -> None:
    assert load_bytes(_pdf(3), "ok.pdf", max_bytes=LIMIT, limits=LoadLimits(max_pages=3))[0].metadata["pages"] == 3
    with pytest.raises(PayloadTooLarge, match="RAGSTORE_MAX_PDF_PAGES") as excinfo:
        load_bytes(_pdf(3), "manual.pdf", max_bytes=LIMIT, limits=LoadLimits(max_pages=2))
    assert "manual.pdf" in excinfo.value.message


def test_the_deadline_stops_an_html_page_midway() -> None:
    data = _paragraphs(50_000)  # about 150,000 parser events: dozens of checkpoints
    clock = TickingClock()
    with pytest.raises(PayloadTooLarge, match="RAGSTORE_LOAD_TIMEOUT_S") as excinfo:
        load_bytes(data, "slow.html", max_bytes=LIMIT, limits=LoadLimits(timeout_s=10), clock=clock)
    assert "slow.html" in excinfo.value.message
    # it stopped at the first checkpoint past the deadline, not at the end of the page
    assert clock.monotonic() - 1000.0 < 20
    # the same page within its time is read whole
    [doc] = load_bytes(data, "slow.html", max_bytes=LIMIT, limits=LoadLimits(timeout_s=1000), clock=TickingClock())
    assert "paragraph 49999" in doc.text


def test_the_deadline_stops_a_pdf_between_pages() -> None:
    with pytest.raises(PayloadTooLarge, match="RAGSTORE_LOAD_TIMEOUT_S"):
        load_bytes(_pdf(6), "slow.pdf", max_bytes=LIMIT, limits=LoadLimits(timeout_s=3), clock=TickingClock())


def test_a_stopping_store_ends_the_load_at_the_next_checkpoint() -> None:
    stopping = threading.Event()
    stopping.set()
    for data, name in ((_paragraphs(10), "a.html"), (_pdf(1), "a.pdf"), (b"text", "a.txt")):
        with pytest.raises(Unavailable, match="shutting down"):
            load_bytes(data, name, max_bytes=LIMIT, stopping=stopping)


def test_a_flate_bomb_is_a_clear_413() -> None:
    bomb = zlib.compress(b" " * 100_000_000, 9)  # 100 MB of content from about 100 KB
    data = raw_pdf(
        [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << >> >>",
            b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(bomb) + bomb + b"\nendstream",
        ]
    )
    with pytest.raises(PayloadTooLarge, match="safety limit") as excinfo:
        load_bytes(data, "bomb.pdf", max_bytes=LIMIT)
    assert "bomb.pdf" in excinfo.value.message


def test_a_page_tree_claiming_ten_million_pages_is_refused() -> None:
    data = raw_pdf(
        [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 10000000 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] >>",
        ]
    )
    with pytest.raises(InvalidInput) as excinfo:
        load_bytes(data, "tree.pdf", max_bytes=LIMIT)
    assert "tree.pdf" in excinfo.value.message and 400 <= excinfo.value.http_status < 500


def test_a_store_shutting_down_stores_nothing_more(store: RagStore, embedder: CountingEmbedder) -> None:
    """Between embedding calls and before the transaction the ingest checks the shutdown: no rows."""
    store.collections.create("kb")
    store.components.ingestor.embed_slice = 2
    calls = len(embedder.calls)

    class StopAfterFirstCall:
        """The real embedder; the store begins shutting down once it has embedded the first slice."""

        model, dimension = embedder.model, embedder.dimension

        def embed(self, texts: list[str], *, kind: str) -> object:
            store.begin_shutdown()
            return embedder.embed(texts, kind=kind)  # type: ignore[arg-type]

    store.components.ingestor.embedder = StopAfterFirstCall()  # type: ignore[assignment]
    text = "\n\n".join(
        f"Paragraph {i} about backups and restores, long enough to be its own chunk." * 8 for i in range(12)
    )
    with pytest.raises(Unavailable, match="shutting down"):
        store.documents.add_text("kb", text)
    assert len(embedder.calls) == calls + 1  # stopped after one slice, not after all of them
    assert store.documents.list("kb") == []
    with pytest.raises(Unavailable):
        store.documents.ingest_bytes("kb", b"<p>late</p>", "late.html")
