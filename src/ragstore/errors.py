"""Domain errors: part of ragstore's interface.

The core raises only these; the HTTP API and the CLI each map them once (to a status code, to an exit
code), so a caller sees the same failure the same way whichever face it uses.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "Conflict",
    "InvalidInput",
    "MigrationError",
    "NotFound",
    "PayloadTooLarge",
    "RagstoreError",
    "Unavailable",
    "UnsupportedMediaType",
]


class RagstoreError(Exception):
    """Base of every error ragstore raises on purpose."""

    code = "error"

    def __init__(self, message: str, *, details: dict[str, object] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}

    def to_dict(self) -> dict[str, object]:
        body: dict[str, object] = {"code": self.code, "message": self.message}
        if self.details:
            body["details"] = self.details
        return body


class InvalidInput(RagstoreError):
    """The caller gave something ragstore cannot accept; nothing was stored."""

    code = "invalid_input"


class PayloadTooLarge(InvalidInput):
    code = "payload_too_large"


class UnsupportedMediaType(InvalidInput):
    code = "unsupported_media_type"


class NotFound(RagstoreError):
    code = "not_found"


class Conflict(RagstoreError):
    code = "conflict"


class Unavailable(RagstoreError):
    """A component ragstore depends on (database, index, embedding service) cannot serve now."""

    code = "unavailable"


class ConfigError(RagstoreError):
    """A configuration value is missing or wrong; the message names the variable."""

    code = "config_error"


class MigrationError(RagstoreError):
    """The database schema is not in a state ragstore may run against."""

    code = "migration_error"
