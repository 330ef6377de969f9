"""The text form of a 32-byte key (BACKUP_ENCRYPTION_KEY, and the server secrets of security/local_secrets.py):
64 hex digits or base64.

It lives at the bottom of the layers, beside `config`, because Settings checks BACKUP_ENCRYPTION_KEY when
it loads (a wrong key should fail at start-up, naming the variable), and config may not import a feature
package. It knows nothing of backups: `backup.keys` turns its ValueError into a KeyProblem.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import secrets

__all__ = ["KEY_BYTES", "decode_key", "generate_key"]

KEY_BYTES = 32


def decode_key(
    text: str | None, variable: str = "BACKUP_ENCRYPTION_KEY", *, keygen: str = "backup keygen"
) -> bytes | None:
    """The 32-byte key from its text, None when unset; ValueError (naming the variable) when malformed."""
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
    raise ValueError(
        f"{variable} must be 32 bytes written as 64 hex digits or base64 "
        f"(got {len(value)} characters); make one with `ragstore {keygen}`"
    )


def generate_key() -> str:
    """A new random key in the form `decode_key` reads (base64)."""
    return base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode()
