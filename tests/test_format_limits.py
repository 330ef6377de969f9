"""Bad input per new format: each is refused naming the file and what is wrong, before anything is stored."""

from __future__ import annotations

import gzip
import io
import time
import zipfile

import pytest

from ragstore.errors import InvalidInput, PayloadTooLarge, UnsupportedMediaType
from ragstore.text.limits import LoadLimits
from ragstore.text.loaders import load_bytes

LIMIT = 64 * 1024 * 1024


def _docx_bytes() -> bytes:
    import docx

    document = docx.Document()
    document.add_paragraph("A real paragraph.")
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def _rezip(data: bytes, replace: dict[str, bytes], extra: dict[str, bytes] | None = None) -> bytes:
    """The .docx with some parts replaced (or added), deflated as Word does."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for item in source.infolist():
            target.writestr(item.filename, replace.get(item.filename, source.read(item.filename)))
        for name, body in (extra or {}).items():
            target.writestr(name, body)
    return out.getvalue()


# --- .docx ---------------------------------------------------------------------------------------------------


def test_a_truncated_docx_is_refused() -> None:
    data = _docx_bytes()
    with pytest.raises(InvalidInput, match=r"report\.docx: is not a valid \.docx file \(a corrupt or truncated zip"):
        load_bytes(data[: len(data) // 2], "report.docx", max_bytes=LIMIT)


def test_a_zip_that_is_not_a_word_document_is_refused() -> None:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("hello.txt", "not word")
    with pytest.raises(InvalidInput, match="not a Word document"):
        load_bytes(out.getvalue(), "report.docx", max_bytes=LIMIT)


def test_a_docx_with_broken_xml_is_refused() -> None:
    data = _rezip(_docx_bytes(), {"word/document.xml": b"<w:document><unclosed>"})
    with pytest.raises(InvalidInput, match=r"report\.docx: is a malformed Word document"):
        load_bytes(data, "report.docx", max_bytes=LIMIT)


def test_an_encrypted_docx_is_refused() -> None:
    # Word saves a password-protected .docx as an OLE compound file holding the encrypted package.
    ole = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 504 + b"EncryptedPackage" * 64
    with pytest.raises(InvalidInput, match=r"encrypted \(password-protected\) Word document"):
        load_bytes(ole, "secret.docx", max_bytes=LIMIT)


def test_a_docx_zip_bomb_is_refused_from_the_directory_before_inflating() -> None:
    bomb = _rezip(_docx_bytes(), {}, {"word/media/padding.bin": b"\x00" * (20 * 1024 * 1024)})
    assert len(bomb) < 100_000
    started = time.perf_counter()
    with pytest.raises(PayloadTooLarge, match="RAGSTORE_MAX_DOCUMENT_BYTES") as excinfo:
        load_bytes(bomb, "bomb.docx", max_bytes=1024 * 1024)
    assert time.perf_counter() - started < 1
    assert "bomb.docx" in excinfo.value.message and "unpacks to more than" in excinfo.value.message
    assert excinfo.value.http_status == 413


def test_a_docx_of_too_many_zip_members_is_refused() -> None:
    data = _rezip(_docx_bytes(), {}, {f"extra/item{i}.xml": b"<a/>" for i in range(60)})
    with pytest.raises(InvalidInput, match="zip members is over the limit of 50"):
        load_bytes(data, "many.docx", max_bytes=LIMIT, limits=LoadLimits(max_archive_entries=50))


# --- .xml ----------------------------------------------------------------------------------------------------

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol9 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
]>
<lolz>&lol9;</lolz>"""

XXE = b"""<?xml version="1.0"?>
<!DOCTYPE doc [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<doc><title>T</title><p>&secret;</p></doc>"""

XXE_PARAMETER = b"""<?xml version="1.0"?>
<!DOCTYPE doc [<!ENTITY % remote SYSTEM "http://127.0.0.1:9/evil.dtd"> %remote;]>
<doc>x</doc>"""


@pytest.mark.parametrize("data", [BILLION_LAUGHS, XXE, XXE_PARAMETER], ids=["billion-laughs", "xxe", "xxe-param"])
def test_xml_entities_and_external_references_are_refused(data: bytes) -> None:
    started = time.perf_counter()
    with pytest.raises(InvalidInput, match=r"evil\.xml: XML with entity declarations or external references") as exc:
        load_bytes(data, "evil.xml", max_bytes=LIMIT)
    assert time.perf_counter() - started < 1
    assert "root:" not in exc.value.message  # nothing of /etc/passwd leaks into the message


def test_malformed_and_empty_xml_are_refused() -> None:
    with pytest.raises(InvalidInput, match=r"bad\.xml: is malformed XML"):
        load_bytes(b"<doc><p>unclosed</doc>", "bad.xml", max_bytes=LIMIT)
    with pytest.raises(InvalidInput, match="contains no text"):
        load_bytes(b"<doc><empty/></doc>", "hollow.xml", max_bytes=LIMIT)


def test_xml_nesting_over_the_limit_is_refused() -> None:
    data = b"<a>" * 300 + b"deep" + b"</a>" * 300
    with pytest.raises(InvalidInput, match=r"XML elements nested more than 100 deep.*RAGSTORE_MAX_HTML_DEPTH"):
        load_bytes(data, "deep.xml", max_bytes=LIMIT, limits=LoadLimits(max_depth=100))
    [doc] = load_bytes(b"<a>" * 20_000 + b"deep" + b"</a>" * 20_000, "ok.xml", max_bytes=LIMIT,
                       limits=LoadLimits(max_depth=50_000))  # fmt: skip
    assert doc.text == "deep"  # no recursion in the walk


_TEXT_GZ = gzip.compress(
    " ".join(f"line {i} of the changelog, entry {i * 7919 % 1000}" for i in range(2000)).encode(), mtime=0
)

# --- .gz -----------------------------------------------------------------------------------------------------


def test_a_gzip_bomb_stops_at_the_document_limit() -> None:
    # 100 members of 10 MiB of zeros each: 1 GiB unpacked from about 1 MB; the cap is 8 MiB.
    member = gzip.compress(b"\x00" * (10 * 1024 * 1024), compresslevel=9)
    bomb = member * 100
    started = time.perf_counter()
    with pytest.raises(PayloadTooLarge, match=r"bomb\.txt\.gz: the gzip file unpacks to more than the limit of "):
        load_bytes(bomb, "bomb.txt.gz", max_bytes=8 * 1024 * 1024)
    assert time.perf_counter() - started < 2  # stopped at 8 MiB, not after inflating 1 GiB


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"plain text, not gzip", "is not a gzip file"),
        (_TEXT_GZ[: len(_TEXT_GZ) // 2], "truncated gzip file"),
        (b"\x1f\x8b\x08\x00" + b"\xff" * 40, "corrupt gzip file"),
        (gzip.compress(b"   \n", mtime=0), "is empty once unpacked"),
    ],
    ids=["not-gzip", "truncated", "corrupt", "empty"],  # stable: every xdist worker must collect the same ids
)
def test_broken_gzip_files_are_refused(data: bytes, match: str) -> None:
    with pytest.raises(InvalidInput, match=match):
        load_bytes(data, "notes.txt.gz", max_bytes=LIMIT)


def test_gz_over_an_unsupported_type_is_refused() -> None:
    with pytest.raises(UnsupportedMediaType, match=r"unsupported file type '\.tar\.gz'"):
        load_bytes(gzip.compress(b"x"), "backup.tar.gz", max_bytes=LIMIT)
    with pytest.raises(UnsupportedMediaType):
        load_bytes(gzip.compress(b"x"), "data.gz", max_bytes=LIMIT)


def test_a_gz_of_binary_content_is_refused_like_the_plain_file() -> None:
    with pytest.raises(InvalidInput, match="NUL bytes"):
        load_bytes(gzip.compress(b"\x89PNG\x00\x00\x00" * 100), "image.txt.gz", max_bytes=LIMIT)


# --- .csv, .po, .rst -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"name,size\n", "a header row and no data rows"),
        (b",,,\n , ,\n", "an empty CSV table"),
        (b"name;size\n\n\n;\n", "a header row and no data rows"),
    ],
)
def test_csv_without_rows_is_refused(data: bytes, match: str) -> None:
    with pytest.raises(InvalidInput, match=match):
        load_bytes(data, "table.csv", max_bytes=LIMIT)


def test_csv_with_a_field_over_the_csv_module_limit_is_refused() -> None:
    data = b'a,b\n"' + b"x" * 200_000 + b'",1\n'
    with pytest.raises(InvalidInput, match=r"table\.csv: is not a readable CSV file \(line \d+: field larger"):
        load_bytes(data, "table.csv", max_bytes=LIMIT)


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b'msgid ""\nmsgstr "Project-Id-Version: x\\n"\n', "a gettext catalogue with no messages"),
        (b'msgid "a"\nmsgstr "b"\nthis is not po\n', "line 3 is not gettext catalogue syntax"),
        (b'msgstr "orphan"\n', "msgstr before any msgid"),
        (b'msgid "bad \\q escape\nmsgstr ""\n', "line 1 is not gettext catalogue syntax|not a valid PO string"),
    ],
)
def test_broken_gettext_catalogues_are_refused(data: bytes, match: str) -> None:
    with pytest.raises(InvalidInput, match=match):
        load_bytes(data, "ko.po", max_bytes=LIMIT)


def test_binary_behind_rst_or_csv_is_refused() -> None:
    for name in ("a.rst", "a.csv", "a.po", "a.xml"):
        with pytest.raises(InvalidInput, match="NUL bytes"):
            load_bytes(b"\x7fELF\x02\x01\x01\x00\x00\x00" * 50, name, max_bytes=LIMIT)
