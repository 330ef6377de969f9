"""Domain errors: part of ragstore's interface.

The core raises only these. Every error belongs to one *category* (the classes in `CATEGORIES`), and the
category carries both its HTTP status and its CLI exit code, so the HTTP API and the CLI read the same
two attributes and a caller sees the same failure the same way whichever face it uses.

The rule the categories follow (docs/architecture.md, "Errors", has the table):

* 4xx and exit 2: the caller can fix it by asking differently (other input, another name, another
  backup or key, later once a conflicting run is over); nothing was changed.
* 5xx and exit 1: ragstore or its environment (a database, a disk, a tool, the vector index) failed;
  the request was fine and may succeed once the cause is fixed.
* The one exception is `ConfigError` (HTTP 500, exit 2): on the command line the person who runs ragstore
  owns its configuration and can fix it, so it is their input; an HTTP client cannot change the server's
  configuration, so for it the server is broken.

A category may refine another (PayloadTooLarge is a narrower InvalidInput with its own status), so
`except InvalidInput` still catches it; an error's category is the most specific one it inherits.
"""

from __future__ import annotations

from typing import ClassVar

from ragstore.secrets_mask import mask, mask_value

__all__ = [
    "CATEGORIES",
    "EXIT_CALLER_ERROR",
    "EXIT_FAILED",
    "BadRequest",
    "ConfigError",
    "Conflict",
    "Forbidden",
    "InsufficientStorage",
    "InvalidInput",
    "MigrationError",
    "NotFound",
    "OperationFailed",
    "PayloadTooLarge",
    "RagstoreError",
    "TooManyRequests",
    "Unauthorized",
    "Unavailable",
    "UnsupportedMediaType",
    "category_of",
]

EXIT_FAILED = 1  # ragstore or its environment failed
EXIT_CALLER_ERROR = 2  # the caller can fix it: bad usage, bad input, unknown name, a conflict


class RagstoreError(Exception):
    """Base of every error ragstore raises on purpose; raise one of the categories (or a member), never this."""

    code = "error"
    # A safe default for an error that (wrongly) belongs to no category: the server's fault, exit 1.
    http_status: ClassVar[int] = 500
    exit_code: ClassVar[int] = EXIT_FAILED

    def __init__(self, message: str, *, details: dict[str, object] | None = None) -> None:
        # Masked once, here, so no face (an API body, a CLI line, a log) can show a password or key it carries.
        message = mask(message)
        super().__init__(message)
        self.message = message
        self.details = mask_value(details) if details else {}

    def to_dict(self) -> dict[str, object]:
        body: dict[str, object] = {"code": self.code, "message": self.message}
        if self.details:
            body["details"] = self.details
        return body


# -- the caller can fix it: 4xx, exit 2 -------------------------------------------------------------------


class InvalidInput(RagstoreError):
    """The caller gave something ragstore cannot accept; nothing was stored."""

    code = "invalid_input"
    http_status = 422
    exit_code = EXIT_CALLER_ERROR


class PayloadTooLarge(InvalidInput):
    code = "payload_too_large"
    http_status = 413


class UnsupportedMediaType(InvalidInput):
    code = "unsupported_media_type"
    http_status = 415


class BadRequest(InvalidInput):
    """A request the server will not read at all (e.g. a Host header it does not answer to)."""

    code = "bad_request"
    http_status = 400


class Unauthorized(RagstoreError):
    """No credentials, or credentials that prove nothing (unknown, expired, revoked key; bad token or password).

    The HTTP face adds `WWW-Authenticate: Bearer`. The message never says which of these it was, so a guesser
    learns nothing from it; the audit log records the reason.
    """

    code = "unauthorized"
    http_status = 401
    exit_code = EXIT_CALLER_ERROR


class TooManyRequests(RagstoreError):
    """Over a rate limit or the cap on concurrent requests; `retry_after_s` says when to come back."""

    code = "rate_limited"
    http_status = 429
    exit_code = EXIT_CALLER_ERROR

    def __init__(self, message: str, *, retry_after_s: float = 1.0, details: dict[str, object] | None = None) -> None:
        super().__init__(message, details=details)
        self.retry_after_s = retry_after_s


class Forbidden(RagstoreError):
    """The request is well formed but refused: the caller's key or session lacks the permission, or it was
    sent in a form a cross-site page could forge (sent with the header the message names it is accepted)."""

    code = "forbidden"
    http_status = 403
    exit_code = EXIT_CALLER_ERROR


class NotFound(RagstoreError):
    code = "not_found"
    http_status = 404
    exit_code = EXIT_CALLER_ERROR


class Conflict(RagstoreError):
    """The request clashes with the current state (a name taken, a run already going); nothing changed."""

    code = "conflict"
    http_status = 409
    exit_code = EXIT_CALLER_ERROR


# -- ragstore or its environment failed: 5xx, exit 1 -------------------------------------------------------


class OperationFailed(RagstoreError):
    """ragstore could not finish an operation for a reason of its own or of its environment (a missing tool,
    a file that changed while it was read); the request was fine."""

    code = "operation_failed"
    http_status = 500
    exit_code = EXIT_FAILED


class MigrationError(OperationFailed):
    """The database schema is not in a state ragstore may run against."""

    code = "migration_error"


class Unavailable(RagstoreError):
    """A component ragstore depends on (database, index, embedding service) cannot serve now."""

    code = "unavailable"
    http_status = 503
    exit_code = EXIT_FAILED


class InsufficientStorage(RagstoreError):
    """A disk is full (or would be): the operator must make room; nothing live was changed."""

    code = "insufficient_storage"
    http_status = 507
    exit_code = EXIT_FAILED


# -- the stated exception ---------------------------------------------------------------------------------


class ConfigError(RagstoreError):
    """A configuration value is missing or wrong; the message names the variable.

    HTTP 500 but exit 2: see the module docstring (the operator owns the configuration, an HTTP client does not).
    """

    code = "config_error"
    http_status = 500
    exit_code = EXIT_CALLER_ERROR


CATEGORIES: tuple[type[RagstoreError], ...] = (
    InvalidInput,
    PayloadTooLarge,
    UnsupportedMediaType,
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    Conflict,
    TooManyRequests,
    OperationFailed,
    Unavailable,
    InsufficientStorage,
    ConfigError,
)


def category_of(kind: type[RagstoreError]) -> type[RagstoreError] | None:
    """The most specific category `kind` belongs to (None only for RagstoreError itself or a stray class)."""
    return next((c for c in kind.__mro__ if c in CATEGORIES), None)
