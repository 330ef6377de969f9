"""Text encodings: BOMs, strict UTF-8, Korean CP949/EUC-KR (short files too), other legacy encodings
through the detector, the explicit override, and the refusal that names what was tried."""

from __future__ import annotations

import codecs

import pytest

from ragstore.errors import InvalidInput
from ragstore.text.encodings import decode_text, looks_korean, normalise_encoding
from ragstore.text.loaders import load_bytes

LIMIT = 64 * 1024 * 1024

KOREAN_SHORT = "안녕하세요"
KOREAN_LINE = "설치 방법을 설명합니다."
KOREAN_LONG = (
    "# 꾸러미 관리자 안내\n\n"
    "이 문서는 데비안 꾸러미 관리자의 사용법을 설명합니다. 꾸러미 목록을 읽고, 의존성을 계산한 다음 "
    "필요한 꾸러미를 내려받아 설치합니다.\n\n"
    "설정 파일은 /etc/apt 아래에 있으며, 저장소 주소를 바꾸면 목록을 다시 읽어야 합니다. "
    "오류가 나면 로그 파일을 확인하십시오.\n"
) * 20
# 똠 and 햏 exist in CP949's extension area only: the file is CP949 and not EUC-KR.
CP949_ONLY = "똠방각하의 한국어 문서입니다. 설치 방법을 설명합니다."


def _load(data: bytes, name: str = "doc.txt", **kwargs: object) -> tuple[str, str | None]:
    [doc] = load_bytes(data, name, max_bytes=LIMIT, **kwargs)  # type: ignore[arg-type]
    return doc.text, doc.encoding


@pytest.mark.parametrize("text", [KOREAN_SHORT, KOREAN_LINE, KOREAN_LONG, CP949_ONLY, "가", "README: 설치"])
@pytest.mark.parametrize("codec", ["cp949", "euc-kr"])
def test_korean_legacy_text_is_decoded_as_cp949_short_or_long(text: str, codec: str) -> None:
    if codec == "euc-kr" and text == CP949_ONLY:
        # Proves the sample needs CP949: KS X 1001 has no 똠, Python's euc-kr spells it as 8 bytes of jamo.
        assert len("똠".encode("euc-kr")) == 8 and len("똠".encode("cp949")) == 2
        return
    data = text.encode(codec)
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")
    loaded, encoding = _load(data)
    # EUC-KR is byte for byte a subset of CP949: a detected Korean file is recorded as the superset.
    assert encoding == "cp949"
    assert loaded == text.strip() or loaded.startswith("# 꾸러미")


@pytest.mark.parametrize(
    ("text", "codec", "expected"),
    [
        ("こんにちは、世界。今日は良い天気です。", "shift_jis", "cp932"),
        ("日本語のテキストファイルです", "shift_jis", "cp932"),
        ("ソフトウェアのインストール", "shift_jis", "cp932"),
        ("café au lait, déjà vu", "latin-1", "cp1252"),
        ("Größe und Übermaß der Straße", "latin-1", "cp1252"),
        ("Привет мир, это текст на русском языке", "cp1251", "cp1251"),
        ("Le système est prêt à démarrer. Déjà vu, café crème. " * 2000, "latin-1", "cp1252"),
        ("Zażółć gęślą jaźń. Pchnąć w tę łódź jeża lub ośm skrzyń fig.", "cp1250", "cp1250"),
        ("Příliš žluťoučký kůň úpěl ďábelské ódy.", "cp1250", "cp1250"),
    ],
)
def test_other_legacy_encodings_are_not_taken_for_korean(text: str, codec: str, expected: str) -> None:
    loaded, encoding = _load(text.encode(codec))
    assert encoding == expected
    assert loaded == text.strip()


def test_shift_jis_bytes_that_decode_as_cp949_are_rejected_as_korean() -> None:
    data = "こんにちは、世界。今日は良い天気です。".encode("shift_jis")
    mojibake = data.decode("cp949")  # valid CP949, but rare extension-area syllables
    assert not looks_korean(mojibake)
    assert looks_korean(KOREAN_LINE) and looks_korean(CP949_ONLY)


@pytest.mark.parametrize(
    ("bom_codec", "recorded"),
    [("utf-8-sig", "utf-8-sig"), ("utf-16", "utf-16"), ("utf-32", "utf-32")],
)
def test_a_byte_order_mark_decides_the_encoding(bom_codec: str, recorded: str) -> None:
    text = "BOM first: 한국어 and English"
    data = text.encode(bom_codec)
    if bom_codec == "utf-16":
        assert data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE))
    loaded, encoding = _load(data)
    assert (loaded, encoding) == (text, recorded)


def test_big_endian_utf16_with_bom() -> None:
    data = codecs.BOM_UTF16_BE + "big endian 텍스트".encode("utf-16-be")
    assert _load(data) == ("big endian 텍스트", "utf-16")


def test_utf8_is_recorded_for_plain_utf8_and_ascii() -> None:
    assert _load("한국어 UTF-8 문서".encode())[1] == "utf-8"
    assert _load(b"plain ascii")[1] == "utf-8"


def test_explicit_encoding_overrides_detection_and_is_strict() -> None:
    data = KOREAN_LINE.encode("euc-kr")
    assert _load(data, encoding="EUC_KR") == (KOREAN_LINE, "euc-kr")
    # Latin-1 would accept any byte; the override is obeyed even though the text is then mojibake.
    assert _load(data, encoding="latin-1")[1] == "iso8859-1"
    with pytest.raises(InvalidInput, match="is not valid utf-8 text"):
        _load(data, encoding="utf-8")
    with pytest.raises(InvalidInput, match="unknown text encoding 'klingon'"):
        _load(data, encoding="klingon")


def test_a_gettext_file_is_decoded_by_its_declared_charset() -> None:
    po = 'msgid ""\nmsgstr "Content-Type: text/plain; charset=EUC-KR\\n"\n\nmsgid "Yes"\nmsgstr "예"\n'
    [doc] = load_bytes(po.encode("euc-kr"), "ko.po", max_bytes=LIMIT)
    assert doc.encoding == "euc-kr" and "Yes\n예" in doc.text


def test_an_html_meta_charset_is_honoured() -> None:
    html = '<html><head><meta charset="windows-1251"><title>Привет</title></head><body>мир</body></html>'
    [doc] = load_bytes(html.encode("cp1251"), "p.html", max_bytes=LIMIT)
    assert (doc.title, doc.text, doc.encoding) == ("Привет", "мир", "cp1251")


def test_undecodable_text_is_refused_naming_the_encodings_tried() -> None:
    # Bytes no text encoding makes sense of (bytes that are invalid in UTF-8 and in CP949, and that the
    # detector finds no coherent reading for), without NULs so the binary check does not answer first.
    data = bytes(range(0x80, 0x100)) * 40 + bytes(range(1, 9)) * 2
    with pytest.raises(InvalidInput) as excinfo:
        decode_text(data, "noise.txt")
    message = excinfo.value.message
    assert message.startswith("noise.txt: ")
    assert "could not be decoded as text (tried utf-8, cp949" in message
    assert excinfo.value.details["encodings_tried"][:2] == ["utf-8", "cp949"]
    with pytest.raises(InvalidInput, match=r"noise\.txt: could not be decoded as text \(tried utf-8, cp949"):
        load_bytes(data, "noise.txt", max_bytes=LIMIT)


def test_binary_files_are_still_refused() -> None:
    with pytest.raises(InvalidInput, match="NUL bytes"):
        _load(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" * 10, "image.txt")
    with pytest.raises(InvalidInput, match="control characters"):
        _load(bytes(range(1, 9)) * 200, "controls.txt")


def test_encoding_names_are_normalised() -> None:
    assert [normalise_encoding(n) for n in ("UTF8", "EUC_KR", "uhc", "Shift_JIS", "latin1")] == [
        "utf-8",
        "euc-kr",
        "cp949",
        "shift-jis",
        "iso8859-1",
    ]
