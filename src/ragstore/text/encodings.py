"""Which encoding a text file is in: a byte-order mark, then strict UTF-8, then the file's own declaration,
then Korean, then a statistical detector; or the caller's explicit encoding, applied strictly.

Korean is tried before the detector because the detector is unreliable on short Korean text (a two-word
CP949 file has too few bytes for statistics), and Korean document trees still hold EUC-KR/CP949 files.
CP949 is tried strictly and accepted only when the text it gives is mostly ordinary Hangul: Shift-JIS
bytes often decode as CP949 too, but into the rare syllables of CP949's extension area (or Hanja), which
that test rejects. EUC-KR is a subset of CP949 (byte for byte the same for EUC-KR text), so a detected
Korean file is recorded as "cp949", the codec that decodes both.
"""

from __future__ import annotations

import codecs
import contextlib
import re
from dataclasses import dataclass

from ragstore.errors import InvalidInput

__all__ = ["DecodedText", "declared_charset", "decode_text", "normalise_encoding"]

# Longest BOM first: the UTF-32-LE mark begins with the UTF-16-LE one.
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_SAMPLE = 65536  # how much of a file the binary checks and the detector look at
_KOREAN_SHARE = 0.7  # of the non-ASCII characters, how many must be ordinary (KS X 1001) Hangul
_DETECTOR_SAMPLE = 1_000_000  # bytes the statistical detector reads at most (its cost grows with the input)


@dataclass(frozen=True, slots=True)
class DecodedText:
    text: str
    encoding: str  # normalised codec name, as stored in documents.encoding


def normalise_encoding(name: str) -> str:
    """Python's canonical codec name, lower case with hyphens ("EUC_KR" -> "euc-kr", "latin1" -> "iso8859-1").

    Raises LookupError for a name no codec answers to.
    """
    return codecs.lookup(name).name.lower().replace("_", "-")


_DECLARED = re.compile(rb"""(?:charset|encoding)\s*=\s*["']?([A-Za-z0-9._:-]{2,40})""", re.IGNORECASE)


def declared_charset(head: bytes) -> str | None:
    """The charset a file declares in its first bytes (an XML declaration, an HTML meta tag, a gettext header)."""
    match = _DECLARED.search(head[:4096])
    return match.group(1).decode("ascii") if match else None


def _strict(data: bytes, encoding: str) -> str | None:
    try:
        return data.decode(encoding)
    except (UnicodeDecodeError, LookupError):
        return None


def _is_ordinary_hangul(ch: str) -> bool:
    if not "\uac00" <= ch <= "\ud7a3":
        return False
    try:
        # The 2,350 syllables of KS X 1001, what Korean text is made of, are two bytes; Python's euc-kr
        # spells any other syllable as an 8-byte jamo sequence.
        return len(ch.encode("euc-kr")) == 2
    except UnicodeEncodeError:
        return False


def looks_korean(text: str) -> bool:
    """Mostly ASCII and ordinary Hangul (Hangul compatibility jamo and a little Hanja or punctuation allowed)."""
    non_ascii = [ch for ch in text[:_SAMPLE] if ord(ch) > 127]
    if not non_ascii:
        return False
    hangul = sum(1 for ch in non_ascii if _is_ordinary_hangul(ch) or "\u3131" <= ch <= "\u318e")
    return hangul >= _KOREAN_SHARE * len(non_ascii)


# Among guesses the detector scores alike, the more common encoding wins: "déjà" is cp1252 far more often
# than the cp1250 "dějŕ" the detector may list first with the same score.
_PREFERRED = ("cp1252", "iso8859-1", "iso8859-15", "cp932", "shift-jis", "euc-jp", "gb18030", "big5")
# Western European text reads as Baltic or Central European to the detector, a little less chaotic, as often
# as not (measured: French in Latin-1 came back cp1257). Within this much chaos of its best guess, cp1252 is
# taken when every non-ASCII character it gives is a Latin-1 letter or common punctuation.
_WESTERN_SLACK = 0.15
_WESTERN = frozenset("ÀÁÂÃÄÅÆÇÈÉÊËÌÍÎÏÐÑÒÓÔÕÖØÙÚÛÜÝÞßàáâãäåæçèéêëìíîïðñòóôõöøùúûüýþÿ’‘“”–—…€«»°©®·§ºª¿¡")


def _reads_western(data: bytes) -> bool:
    text = _strict(data, "cp1252")
    return text is not None and all(ch in _WESTERN for ch in text if ord(ch) > 127)


def _detected(data: bytes) -> str | None:
    from charset_normalizer import from_bytes

    sample = data[:_DETECTOR_SAMPLE]
    matches = from_bytes(sample)
    best = matches.best()
    if best is None:
        return None
    tied: set[str] = set()
    near: set[str] = set()
    for match in matches:
        names: set[str] = set()
        for codec in [match.encoding, *match.could_be_from_charset]:
            with contextlib.suppress(LookupError):
                names.add(normalise_encoding(codec))
        if (match.chaos, -match.coherence) <= (best.chaos, -best.coherence):
            tied |= names
        if match.chaos <= best.chaos + _WESTERN_SLACK:
            near |= names
    if "cp1252" in near and "cp1252" not in tied and _reads_western(sample):
        return "cp1252"
    for codec in _PREFERRED:
        if codec in tied:
            return codec
    return best.encoding


def _check_not_binary(text: str, name: str) -> str:
    sample = text[:_SAMPLE]
    controls = sum(1 for ch in sample if ord(ch) < 32 and ch not in "\n\r\t\f")
    if controls > max(8, len(sample) // 100):
        raise InvalidInput(f"{name}: looks like a binary file ({controls} control characters), not text")
    return text


def decode_text(data: bytes, name: str, encoding: str | None = None, *, declared: str | None = None) -> DecodedText:
    """Decode a text file, or refuse it naming the encodings tried.

    `encoding` is the caller's override: decoded strictly with it, nothing guessed. `declared` is what the
    file says of itself (XML/HTML/gettext charset), tried after UTF-8 and before any guess.
    """
    if encoding is not None:
        try:
            codec = normalise_encoding(encoding)
        except LookupError as exc:
            raise InvalidInput(f"{name}: unknown text encoding {encoding!r}") from exc
        if b"\x00" in data[:_SAMPLE] and not codec.startswith(("utf-16", "utf-32")):
            raise InvalidInput(f"{name}: looks like a binary file (it contains NUL bytes), not text")
        try:
            text = data.decode(codec)
        except UnicodeDecodeError as exc:
            raise InvalidInput(f"{name}: is not valid {codec} text (invalid byte at offset {exc.start})") from exc
        if codec == "utf-8":
            text = text.removeprefix("\ufeff")
        return DecodedText(_check_not_binary(text, name), codec)
    for bom, codec in _BOMS:
        if data.startswith(bom):
            found = _strict(data, codec)
            if found is None:
                raise InvalidInput(f"{name}: starts with a {codec} byte-order mark but is not valid {codec} text")
            return DecodedText(_check_not_binary(found, name), codec)
    if b"\x00" in data[:_SAMPLE]:
        raise InvalidInput(f"{name}: looks like a binary file (it contains NUL bytes), not text")
    tried = ["utf-8"]
    found = _strict(data, "utf-8")
    if found is not None:
        return DecodedText(_check_not_binary(found, name), "utf-8")
    candidates: list[str] = []
    if declared:
        # "charset=CHARSET" in a gettext template, or a typo: unknown, skipped; the guesses below still run.
        with contextlib.suppress(LookupError):
            candidates.append(normalise_encoding(declared))
    candidates.append("cp949")
    for codec in candidates:
        if codec in tried:
            continue
        tried.append(codec)
        found = _strict(data, codec)
        if found is not None and (codec != "cp949" or looks_korean(found)):
            return DecodedText(_check_not_binary(found, name), codec)
    guess = _detected(data)
    if guess is not None:
        codec = normalise_encoding(guess)
        if codec not in tried:
            tried.append(codec)
        found = _strict(data, codec)
        if found is not None:
            return DecodedText(_check_not_binary(found, name), codec)
    raise InvalidInput(
        f"{name}: could not be decoded as text (tried {', '.join(tried)}, and no other encoding fits); "
        "give its encoding explicitly",
        details={"source": name, "encodings_tried": tried},
    )
