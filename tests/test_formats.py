"""Every supported format loads a realistic file, with the title its own structure gives."""

from __future__ import annotations

import gzip
import hashlib
import io
from pathlib import Path

import pytest

from ragstore.text.chunking import count_tokens
from ragstore.text.limits import LoadLimits
from ragstore.text.loaders import SUPPORTED_EXTENSIONS, is_supported, load_bytes, load_path, mime_for
from ragstore.text.paths import expand_paths
from ragstore.text.titles import first_line_title, rst_title, short_title

LIMIT = 64 * 1024 * 1024
PARAGRAPH = (
    "The package manager reads the lists of available packages from every configured source, works out "
    "which dependencies are needed, downloads them and installs them in the right order."
)


def _docx(*, title: str | None = None) -> bytes:
    import docx

    document = docx.Document()
    if title is not None:
        document.core_properties.title = title
    document.add_heading("Installing packages", level=1)
    document.add_paragraph(PARAGRAPH)
    table = document.add_table(rows=3, cols=2)
    for r, (name, size) in enumerate([("Package", "Size"), ("apt", "1.4 MB"), ("dpkg", "2.9 MB")]):
        table.cell(r, 0).text, table.cell(r, 1).text = name, size
    document.add_heading("Removing packages", level=2)
    document.add_paragraph("Use apt remove to remove a package and keep its configuration files.")
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def test_docx_keeps_paragraphs_and_tables_in_order_titled_by_its_properties() -> None:
    [doc] = load_bytes(_docx(title="APT User Guide"), "guide.docx", max_bytes=LIMIT)
    assert doc.title == "APT User Guide"
    assert doc.mime_type == mime_for("guide.docx")[1]
    assert doc.text == (
        "# Installing packages\n\n" + PARAGRAPH + "\n\nPackage | Size\napt | 1.4 MB\ndpkg | 2.9 MB\n\n"
        "## Removing packages\n\nUse apt remove to remove a package and keep its configuration files."
    )
    assert doc.encoding is None  # a zip of XML parts, not a text file


def test_docx_without_a_title_property_is_titled_by_its_first_heading() -> None:
    [doc] = load_bytes(_docx(title=""), "guide.docx", max_bytes=LIMIT)
    assert doc.title == "Installing packages"


def test_rst_is_plain_text_titled_by_its_document_title() -> None:
    rst = (
        ".. comment: built from the Debian reference\n\n"
        "=================\n APT User Guide\n=================\n\n"
        "Introduction\n------------\n\n" + PARAGRAPH + "\n"
    )
    [doc] = load_bytes(rst.encode(), "guide.rst", max_bytes=LIMIT)
    assert (doc.title, doc.mime_type) == ("APT User Guide", "text/x-rst")
    assert PARAGRAPH in doc.text
    assert rst_title("설치 안내\n=========\n\n본문") == "설치 안내"  # wide characters: 5 chars, 9 columns
    assert rst_title("A line\n--\n") == ""  # an underline shorter than its text is no heading


def test_csv_groups_rows_with_the_header_and_sizes_them_by_the_chunk_size() -> None:
    rows = ["package;version;description"] + [
        f"pkg{i};1.{i};A package that does useful thing number {i} for the system" for i in range(200)
    ]
    [doc] = load_bytes("\n".join(rows).encode(), "packages.csv", max_bytes=LIMIT, limits=LoadLimits(chunk_tokens=128))
    assert doc.title == "packages"
    assert doc.metadata == {"rows": 200, "columns": 3, "delimiter": ";"}
    assert doc.chunks is not None and len(doc.chunks) > 10
    assert all(chunk.startswith("package | version | description\n") for chunk in doc.chunks)
    assert all(count_tokens(chunk) <= 128 for chunk in doc.chunks)
    seen = [line for chunk in doc.chunks for line in chunk.splitlines()[1:]]
    assert seen == doc.text.splitlines()[1:]  # every row once, in order
    bigger = load_bytes("\n".join(rows).encode(), "p.csv", max_bytes=LIMIT, limits=LoadLimits(chunk_tokens=512))
    assert bigger[0].chunks is not None and len(bigger[0].chunks) < len(doc.chunks) / 3


def test_csv_quoted_cells_and_a_row_longer_than_a_chunk() -> None:
    long_cell = " ".join(f"word{i}" for i in range(400))
    data = f'name,notes\n"Kim, Minsu","line one\nline two"\nlong,"{long_cell}"\n'.encode()
    [doc] = load_bytes(data, "notes.csv", max_bytes=LIMIT, limits=LoadLimits(chunk_tokens=100))
    assert doc.text.splitlines()[1] == "Kim, Minsu | line one line two"
    assert doc.chunks is not None and len(doc.chunks) >= 4
    assert all(chunk.startswith("name | notes\n") and count_tokens(chunk) <= 100 for chunk in doc.chunks)


def test_csv_in_cp949_is_decoded() -> None:
    data = "이름,설명\n김치,배추를 절여 만든 음식\n".encode("cp949")
    [doc] = load_bytes(data, "food.csv", max_bytes=LIMIT)
    assert doc.encoding == "cp949" and doc.chunks == ["이름 | 설명\n김치 | 배추를 절여 만든 음식"]


def test_xml_text_in_document_order_titled_by_its_title_element() -> None:
    xml = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<book xmlns="http://docbook.org/ns/docbook"><info><title>APT Guide</title></info>'
        "<chapter><para>First <emphasis>important</emphasis> point.</para><!-- a note --><para>Second.</para>"
        "</chapter></book>"
    )
    [doc] = load_bytes(xml.encode(), "guide.xml", max_bytes=LIMIT)
    assert (doc.title, doc.metadata) == ("APT Guide", {"root": "book"})
    assert doc.text == "APT Guide\nFirst\nimportant\npoint.\nSecond."


def test_xml_declaring_euc_kr_is_decoded_by_its_declaration() -> None:
    xml = '<?xml version="1.0" encoding="EUC-KR"?><doc><title>안내</title><p>설치 방법</p></doc>'
    [doc] = load_bytes(xml.encode("euc-kr"), "ko.xml", max_bytes=LIMIT)
    assert (doc.title, doc.text, doc.encoding) == ("안내", "안내\n설치 방법", "euc-kr")


PO = r"""# Korean translation of apt.
msgid ""
msgstr ""
"Project-Id-Version: apt 2.6.1\n"
"Language: ko\n"
"Content-Type: text/plain; charset=UTF-8\n"

#: apt-pkg/init.cc:12
msgid "Reading package lists"
msgstr "꾸러미 목록을 읽는 중입니다"

msgctxt "menu"
msgid ""
"Could not open "
"the file"
msgstr "파일을 열 수 없습니다"

msgid "%d package"
msgid_plural "%d packages"
msgstr[0] "꾸러미 %d개"

#~ msgid "Obsolete"
#~ msgstr "쓰이지 않음"
"""


def test_po_catalogue_is_messages_titled_by_its_project() -> None:
    [doc] = load_bytes(PO.encode(), "ko.po", max_bytes=LIMIT)
    assert doc.title == "apt 2.6.1"
    assert doc.mime_type == "text/x-gettext"
    assert doc.metadata == {"messages": 3, "language": "ko"}
    assert doc.text == (
        "Reading package lists\n꾸러미 목록을 읽는 중입니다\n\nCould not open the file\n파일을 열 수 없습니다"
        "\n\n%d package\n%d packages\n꾸러미 %d개"
    )
    assert "Obsolete" not in doc.text and 'msgid ""' not in doc.text


def test_pot_template_without_a_project_is_titled_by_its_first_message() -> None:
    pot = (
        'msgid ""\nmsgstr ""\n"Project-Id-Version: PACKAGE VERSION\\n"\n\nmsgid "Do you want to continue?"\nmsgstr ""\n'
    )
    [doc] = load_bytes(pot.encode(), "apt.pot", max_bytes=LIMIT)
    assert doc.title == "Do you want to continue?"
    assert doc.text == "Do you want to continue?"


def test_gz_loads_by_its_inner_extension_and_hashes_the_raw_file() -> None:
    md = ("# Release notes\n\n" + PARAGRAPH + "\n").encode()
    data = gzip.compress(md)
    [doc] = load_bytes(data, "NEWS.md.gz", max_bytes=LIMIT)
    assert (doc.title, doc.mime_type, doc.source_uri) == ("Release notes", "text/markdown", "NEWS.md.gz")
    assert doc.metadata == {"compression": "gzip"} and doc.encoding == "utf-8"
    assert doc.source_hash == hashlib.sha256(data).hexdigest()
    # Two concatenated members (what `cat a.gz b.gz` makes) are one file.
    [both] = load_bytes(gzip.compress(b"first part\n") + gzip.compress(b"second part\n"), "x.txt.gz", max_bytes=LIMIT)
    assert both.text == "first part\nsecond part"


def test_gz_korean_text_is_detected_inside() -> None:
    [doc] = load_bytes(gzip.compress("변경 사항 목록입니다".encode("cp949")), "changelog.txt.gz", max_bytes=LIMIT)
    assert (doc.text, doc.encoding) == ("변경 사항 목록입니다", "cp949")


def test_titles_from_structure_and_a_short_first_line() -> None:
    long_line = " ".join(["The first paragraph of this text file runs on"] * 5)
    [txt] = load_bytes((long_line + "\n\nmore").encode(), "notes.txt", max_bytes=LIMIT)
    assert len(txt.title) <= 80 and txt.title.endswith("…")
    assert long_line.startswith(txt.title[:-1]) and long_line[len(txt.title) - 1] == " "  # cut between words
    [md] = load_bytes(b"Intro line\n\n## Setup\n\ntext", "a.md", max_bytes=LIMIT)
    assert md.title == "Setup"
    [setext] = load_bytes(b"User Guide\n==========\n\ntext", "b.md", max_bytes=LIMIT)
    assert setext.title == "User Guide"
    [h1] = load_bytes(b"<html><body><h1>Heading One</h1><p>body</p></body></html>", "c.html", max_bytes=LIMIT)
    assert h1.title == "Heading One"
    assert first_line_title("\n\n", "stem") == "stem"
    assert short_title("가" * 120) == "가" * 79 + "…"  # no spaces at all: cut inside
    assert len(short_title("x" * 1000, 200)) == 200


def test_load_path_reads_every_format_and_folder_scans_take_gz_over_supported_types(tmp_path: Path) -> None:
    (tmp_path / "a.docx").write_bytes(_docx(title="Doc"))
    (tmp_path / "b.rst").write_text("Title\n=====\n\nbody\n")
    (tmp_path / "c.csv").write_text("h1,h2\n1,2\n")
    (tmp_path / "d.xml").write_text("<r><title>X</title></r>")
    (tmp_path / "e.po").write_text(PO)
    (tmp_path / "f.txt.gz").write_bytes(gzip.compress(b"zipped"))
    (tmp_path / "g.tar.gz").write_bytes(gzip.compress(b"not a document"))
    (tmp_path / "h.gz").write_bytes(gzip.compress(b"no inner type"))
    (tmp_path / "i.pot").write_text(PO)
    found = [p.name for p in expand_paths([tmp_path])]
    assert found == ["a.docx", "b.rst", "c.csv", "d.xml", "e.po", "f.txt.gz", "i.pot"]
    assert not is_supported(Path("g.tar.gz")) and ".gz" in SUPPORTED_EXTENSIONS
    titles = [load_path(tmp_path / name, max_bytes=LIMIT)[0].title for name in found]
    assert titles == ["Doc", "Title", "c", "X", "apt 2.6.1", "zipped", "apt 2.6.1"]


@pytest.mark.parametrize(
    ("name", "declared", "expected"),
    [
        ("a.DOCX", None, ".docx"),
        ("upload", "text/csv; charset=utf-8", ".csv"),
        ("upload", "text/xml", ".xml"),
        ("upload", "text/x-po", ".po"),
        ("notes.rst.gz", None, ".rst"),
    ],
)
def test_mime_for_new_types(name: str, declared: str | None, expected: str) -> None:
    assert mime_for(name, declared)[0] == expected
