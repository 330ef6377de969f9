"""The backup key: read from BACKUP_ENCRYPTION_KEY, 32 bytes, and checked against the repository's record.

The text form itself is `ragstore.keys` (config checks it at load time and may not import this package);
here a malformed key becomes a KeyProblem, the error backups report.
"""

from __future__ import annotations

import hashlib
import hmac

from ragstore.backup.errors import KeyProblem
from ragstore.keys import KEY_BYTES, decode_key, generate_key

__all__ = ["KEY_BYTES", "generate_key", "key_check", "parse_key"]

_CHECK_INPUT = b"ragstore backup repository key check v1"


def parse_key(text: str | None) -> bytes | None:
    """The 32-byte AES-256 key from its text (64 hex digits or base64), None when unset."""
    try:
        return decode_key(text)
    except ValueError as exc:
        raise KeyProblem(str(exc)) from None


def key_check(key: bytes) -> str:
    """A value stored in the repository that tells the right key from a wrong one without revealing it."""
    return hmac.new(key, _CHECK_INPUT, hashlib.sha256).hexdigest()
