"""The text of an API key: `rsk_<key id>_<secret><checksum>`, and how to tell a well-formed one at a glance.

- `rsk_` names the kind, so secret scanners (and people) recognise a leaked ragstore key.
- the key id, 12 lowercase base32 characters (60 random bits), is public: it finds the row, it is logged.
- the secret, 43 base62 characters (256.1 bits from `secrets`), is never stored: only its HMAC is.
- the checksum, 6 base62 characters of the CRC32 of everything before it, lets a scanner (and ragstore,
  before it touches the database) refuse a mistyped or made-up key without a lookup.
"""

from __future__ import annotations

import re
import secrets
import string
import zlib
from dataclasses import dataclass

__all__ = ["KEY_PATTERN", "PREFIX", "ParsedKey", "checksum", "looks_like_key", "new_key", "parse_key"]

PREFIX = "rsk_"
BASE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase
BASE32 = string.ascii_lowercase + "234567"
KEY_ID_LENGTH = 12
SECRET_LENGTH = 43  # 62**43 > 2**256
CHECKSUM_LENGTH = 6  # 62**6 > 2**32
KEY_PATTERN = re.compile(
    rf"rsk_([a-z2-7]{{{KEY_ID_LENGTH}}})_([0-9A-Za-z]{{{SECRET_LENGTH}}})([0-9A-Za-z]{{{CHECKSUM_LENGTH}}})"
)
MAX_KEY_LENGTH = len(PREFIX) + KEY_ID_LENGTH + 1 + SECRET_LENGTH + CHECKSUM_LENGTH


@dataclass(frozen=True, slots=True)
class ParsedKey:
    key_id: str
    secret: str


def _base62(number: int, width: int) -> str:
    digits = []
    for _ in range(width):
        number, digit = divmod(number, 62)
        digits.append(BASE62[digit])
    return "".join(reversed(digits))


def checksum(body: str) -> str:
    """Six base62 characters of CRC32 over `rsk_<key id>_<secret>`."""
    return _base62(zlib.crc32(body.encode("ascii")), CHECKSUM_LENGTH)


def new_key() -> tuple[str, ParsedKey]:
    """A fresh key's full text and its parts (the secret from the OS's CSPRNG)."""
    key_id = "".join(secrets.choice(BASE32) for _ in range(KEY_ID_LENGTH))
    secret = "".join(secrets.choice(BASE62) for _ in range(SECRET_LENGTH))
    body = f"{PREFIX}{key_id}_{secret}"
    return body + checksum(body), ParsedKey(key_id, secret)


def parse_key(text: str) -> ParsedKey | None:
    """The parts of a well-formed key whose checksum holds, else None (no database is asked)."""
    if len(text) != MAX_KEY_LENGTH:
        return None
    match = KEY_PATTERN.fullmatch(text)
    if match is None:
        return None
    key_id, secret, given = match.groups()
    if not secrets.compare_digest(checksum(f"{PREFIX}{key_id}_{secret}"), given):
        return None
    return ParsedKey(key_id, secret)


def looks_like_key(text: str) -> bool:
    """Whether a bearer token is meant as an API key (then it is judged as one, never handed on)."""
    return text.startswith(PREFIX)
