"""Loaders and chunking."""

from __future__ import annotations

import json

import pytest

from ragstore.errors import InvalidInput, PayloadTooLarge, UnsupportedMediaType
from ragstore.text.chunking import chunk_text, count_tokens, split_sentences
from ragstore.text.hashing import content_hash
from ragstore.text.loaders import load_bytes

LIMIT = 1024 * 1024


def test_markdown_title_from_first_heading() -> None:
    [doc] = load_bytes("intro\n\n# 환불 규정\n\n내용".encode(), "guide.md", max_bytes=LIMIT)
    assert doc.title == "환불 규정"
    assert doc.mime_type == "text/markdown"


def test_html_drops_scripts_and_styles_and_keeps_structure() -> None:
    html = b"""<html><head><title>Rate limits</title><style>p{color:red}</style>
    <script>var secret = 1;</script></head><body><h1>Limits</h1><p>100 requests per minute.</p>
    <p>Burst of 20.</p><script>track()</script></body></html>"""
    [doc] = load_bytes(html, "limits.html", max_bytes=LIMIT)
    assert doc.title == "Rate limits"
    assert "secret" not in doc.text and "track" not in doc.text and "color" not in doc.text
    assert "100 requests per minute." in doc.text
    assert "\n\n" in doc.text  # paragraphs stay separate


def test_pdf_text_is_extracted() -> None:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("helvetica", size=12)
    pdf.set_title("Backup procedure")
    pdf.multi_cell(0, 10, "Back up the database every night. Keep seven daily copies.")
    [doc] = load_bytes(bytes(pdf.output()), "backup.pdf", max_bytes=LIMIT)
    assert "Keep seven daily copies" in doc.text
    assert doc.title == "Backup procedure"
    assert doc.metadata["pages"] == 1


def test_json_and_jsonl_records() -> None:
    [one] = load_bytes(
        json.dumps({"title": "T", "text": "본문", "metadata": {"lang": "ko"}}).encode(), "a.json", max_bytes=LIMIT
    )
    assert (one.title, one.text, one.metadata) == ("T", "본문", {"lang": "ko"})
    lines = "\n".join(json.dumps({"title": f"r{i}", "text": f"record {i}"}) for i in range(3))
    docs = load_bytes(lines.encode(), "faq.jsonl", max_bytes=LIMIT)
    assert [d.source_uri for d in docs] == ["faq.jsonl#0", "faq.jsonl#1", "faq.jsonl#2"]


@pytest.mark.parametrize(
    ("data", "name", "error", "message"),
    [
        (b"", "empty.txt", InvalidInput, "is empty"),
        (b"   \n\n  ", "blank.md", InvalidInput, "is empty"),
        (bytes(range(256)) * 4, "binary.txt", InvalidInput, "binary"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, "image.md", InvalidInput, "binary"),
        (bytes(range(0x80, 0x100)) * 3, "noise.txt", InvalidInput, r"decoded as text \(tried utf-8, cp949"),
        (b"MZ\x90\x00", "tool.exe", UnsupportedMediaType, "unsupported file type"),
        (b'{"text": "a",', "broken.json", InvalidInput, "invalid JSON"),
        (b'{"text": "ok"}\n{oops}\n', "broken.jsonl", InvalidInput, "line 2"),
        (b'{"title": "no text"}', "notext.json", InvalidInput, '"text"'),
        (b"%PDF-1.7 garbage that is not a pdf", "bad.pdf", InvalidInput, "PDF"),
        (b"x" * 2048, "big.txt", PayloadTooLarge, "over the limit"),
    ],
)
def test_bad_files_are_refused_with_a_clear_message(data: bytes, name: str, error: type, message: str) -> None:
    with pytest.raises(error, match=message) as excinfo:
        load_bytes(data, name, max_bytes=1024)
    assert name in str(excinfo.value)


def test_korean_sentences_split_on_their_endings() -> None:
    text = "배추를 절인다. 양념을 만든다! 맛있나요? 네, 맛있어요."
    assert split_sentences(text) == ["배추를 절인다.", "양념을 만든다!", "맛있나요?", "네, 맛있어요."]


def test_chunks_respect_the_budget_and_are_deterministic() -> None:
    text = "# 제목\n\n" + " ".join(f"문장 번호 {i}번은 여기에 있습니다." for i in range(200))
    first = chunk_text(text, max_tokens=64, overlap_tokens=8)
    second = chunk_text(text, max_tokens=64, overlap_tokens=8)
    assert first == second
    assert len(first) > 5
    assert all(c.token_count <= 64 for c in first)
    assert [c.ordinal for c in first] == list(range(len(first)))


def test_overlap_repeats_trailing_sentences() -> None:
    text = " ".join(f"Sentence number {i} is here." for i in range(40))
    chunks = chunk_text(text, max_tokens=40, overlap_tokens=10)
    last_of_first = chunks[0].text.split(". ")[-1].rstrip(".")
    assert last_of_first in chunks[1].text


def test_headings_open_new_chunks() -> None:
    text = "# A\n\nalpha text here.\n\n# B\n\nbeta text here."
    chunks = chunk_text(text, max_tokens=200, overlap_tokens=10)
    assert [c.text.splitlines()[0] for c in chunks] == ["# A", "# B"]


def test_a_long_run_without_spaces_is_still_cut() -> None:
    chunks = chunk_text("가" * 1000, max_tokens=50, overlap_tokens=0)
    assert all(c.token_count <= 50 for c in chunks)
    assert "".join(c.text for c in chunks) == "가" * 1000


def test_token_estimate_and_hash_normalisation() -> None:
    assert count_tokens("hello world") == 2
    assert count_tokens("안녕하세요") == 3
    # NFC: a precomposed syllable and its conjoining jamo hash the same
    assert content_hash("\uac00") == content_hash("\u1100\u1161")
    assert content_hash("a\r\nb") == content_hash("a\nb")
