"""The backup key: read from BACKUP_ENCRYPTION_KEY, 32 bytes, and checked against the repository's record."""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import secrets

from ragstore.backup.errors import KeyProblem

__all__ = ["generate_key", "key_check", "parse_key"]

KEY_BYTES = 32
_CHECK_INPUT = b"ragstore backup repository key check v1"


def parse_key(text: str | None) -> bytes | None:
    """The 32-byte AES-256 key from its text (64 hex digits or base64), None when unset."""
    if text is None or not text.strip():
        return None
    value = text.strip()
    candidates: list[bytes] = []
    with contextlib.suppress(ValueError):
        candidates.append(bytes.fromhex(value))
    for decode in (base64.b64decode, base64.urlsafe_b64decode):
        with contextlib.suppress(binascii.Error, ValueError):
            candidates.append(decode(value + "=" * (-len(value) % 4)))
    for key in candidates:
        if len(key) == KEY_BYTES:
            return key
    raise KeyProblem(
        "BACKUP_ENCRYPTION_KEY must be 32 bytes written as 64 hex digits or base64 "
        f"(got {len(value)} characters); make one with `ragstore backup keygen`"
    )


def generate_key() -> str:
    return base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode()


def key_check(key: bytes) -> str:
    """A value stored in the repository that tells the right key from a wrong one without revealing it."""
    return hmac.new(key, _CHECK_INPUT, hashlib.sha256).hexdigest()
