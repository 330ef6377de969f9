"""The server-side secrets (API_KEY_SALT, JWT_SECRET, AUDIT_SIGNING_KEY, ENCRYPTION_KEY), configured or made.

A setting wins. Without one (the local and test profiles; production refuses to start, see config.py) the
secret is generated once with `secrets.token_bytes` and kept in `<data dir>/secrets/<name>` with mode 0600,
so `make run` needs no set-up and every process on the machine agrees on it. The folder is never part of
a backup: a key stored beside the data it protects protects nothing.
"""

from __future__ import annotations

import base64
import contextlib
import os
import secrets
from pathlib import Path

from pydantic import SecretStr

from ragstore.config import Settings
from ragstore.errors import ConfigError
from ragstore.keys import decode_key
from ragstore.secrets_mask import register

__all__ = ["SECRET_BYTES", "decode_secret", "generated_secrets", "register_key", "secrets_dir", "server_secret"]

SECRET_BYTES = 32
_SETTINGS = {
    "api_key_salt": "API_KEY_SALT",
    "jwt_secret": "JWT_SECRET",
    "audit_signing_key": "AUDIT_SIGNING_KEY",
    "encryption_key": "ENCRYPTION_KEY",
}


def secrets_dir(settings: Settings) -> Path:
    return settings.data_dir / "secrets"


def generated_secrets(settings: Settings) -> dict[str, Path]:
    """The variables not configured whose secret was generated, and the file it is in (for `config show`)."""
    found = {}
    for name, variable in _SETTINGS.items():
        configured: SecretStr | None = getattr(settings, name)
        path = secrets_dir(settings) / name
        if (configured is None or not configured.get_secret_value().strip()) and path.is_file():
            found[variable] = path
    return found


def decode_secret(text: str, variable: str) -> bytes:
    """32 bytes from 64 hex digits or base64 (what `ragstore secrets keygen` prints); ConfigError otherwise."""
    try:
        key = decode_key(text, variable, keygen="secrets keygen")
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    if key is None:
        raise ConfigError(f"{variable} is empty; make one with `ragstore secrets keygen`")
    return key


def register_key(key: bytes) -> bytes:
    """Have the masking hide `key` in each spelling it could be shown in (hex either case, base64 and base64url
    with or without padding), whichever one it was configured in; returns `key`."""
    b64 = base64.b64encode(key).decode()
    urlsafe = base64.urlsafe_b64encode(key).decode()
    register(key.hex(), key.hex().upper(), b64, b64.rstrip("="), urlsafe, urlsafe.rstrip("="))
    return key


def server_secret(settings: Settings, name: str) -> bytes:
    """The 32-byte secret `name` (a Settings field of `_SETTINGS`): configured, else read or made once."""
    variable = _SETTINGS[name]
    configured: SecretStr | None = getattr(settings, name)
    if configured is not None and configured.get_secret_value().strip():
        return register_key(decode_secret(configured.get_secret_value(), variable))
    if settings.env == "production":
        raise ConfigError(f"{variable} is not set (RAGSTORE_ENV=production generates no secrets)")
    path = secrets_dir(settings) / name
    if not path.exists():
        _create(path)
    text = path.read_text().strip()
    register(text)
    return register_key(decode_secret(text, f"{variable} (from {path})"))


def _create(path: Path) -> None:
    """Write a new secret with mode 0600 from the first byte; of two processes racing, the first one wins."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(OSError):
        os.chmod(path.parent, 0o700)
    value = secrets.token_bytes(SECRET_BYTES).hex()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")
