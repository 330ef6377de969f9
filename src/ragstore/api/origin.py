"""No cross-site writes: a Host allowlist, and state changes only in a form a foreign page cannot send unasked.

DNS rebinding points an attacker's name at 127.0.0.1, so a page the victim opens talks to the local server
as a same-origin page, with the attacker's name in the Host header: answering only the names the server is
meant to be reached by closes that. Starlette's TrustedHostMiddleware does the same check but answers in
plain text; ragstore's error body is part of its contract, so the check is ragstore's own. The policy is
here; api/limits.py's middleware applies it in the same pass over the headers as the body limits.

A page on another site can send, without asking the server first (no CORS preflight), only a POST whose
Content-Type is a form's (urlencoded, multipart) or text/plain, with no header of its own choosing. So a
POST is accepted only with a JSON content type (which a browser preflights, and CORS is off unless
RAGSTORE_CORS_ORIGINS allows an origin) or with an `X-Requested-With` header (which a form cannot add):
multipart uploads and empty POSTs carry that header. PUT, PATCH and DELETE are never simple: a browser
always preflights them, so they need neither (`curl -X DELETE` keeps working, and a PUT where no route
takes one still answers 405).
"""

from __future__ import annotations

from ragstore.config import Settings
from ragstore.errors import BadRequest, Forbidden, UnsupportedMediaType

__all__ = ["WRITE_HEADER", "allowed_hosts", "host_name", "host_refusal", "is_json_type", "write_refusal"]

LOOPBACK = ("localhost", "127.0.0.1", "::1")
WRITE_HEADER = b"x-requested-with"


def allowed_hosts(settings: Settings) -> frozenset[str] | None:
    """The host names the server answers to; None when RAGSTORE_ALLOWED_HOSTS is "*" (any)."""
    names = [n.strip().lower().strip("[]") for n in settings.allowed_hosts.split(",") if n.strip()]
    if "*" in names:
        return None
    if names:
        return frozenset(names)
    bound = settings.api_host.strip().lower().strip("[]")
    return frozenset((*LOOPBACK, bound) if bound not in ("0.0.0.0", "::", "") else LOOPBACK)


def host_name(value: str) -> str:
    """The name in a Host header value, without its port ("[::1]:8000" -> "::1")."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


def host_refusal(host: bytes) -> BadRequest:
    shown = host.decode("latin-1")[:100] or "(none)"
    return BadRequest(
        f"this server does not answer to the host {shown!r}; set RAGSTORE_ALLOWED_HOSTS to the names clients "
        "use to reach it"
    )


def is_json_type(content_type: bytes) -> bool:
    kind = content_type.split(b";", 1)[0].strip().lower()
    return kind == b"application/json" or kind.endswith(b"+json")


def write_refusal(content_type: bytes) -> Forbidden | UnsupportedMediaType:
    """Why a POST without a JSON content type or the X-Requested-With header is refused."""
    kind = content_type.split(b";", 1)[0].strip().lower().decode("latin-1")
    if kind == "multipart/form-data":
        return Forbidden(
            "a multipart upload must carry an X-Requested-With header (any value), which a page on another "
            "site cannot add to a form"
        )
    return UnsupportedMediaType(
        f"send Content-Type: application/json (or, for an upload or an empty body, an X-Requested-With header), "
        f"not {kind or 'no content type'}"
    )
