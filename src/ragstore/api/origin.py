"""No cross-site writes: a Host allowlist, and state changes only in a form a foreign page cannot send unasked.

DNS rebinding points an attacker's name at 127.0.0.1, so a page the victim opens talks to the local server
as a same-origin page, with the attacker's name in the Host header: answering only the names the server is
meant to be reached by closes that. Starlette's TrustedHostMiddleware does the same check but answers in
plain text; ragstore's error body is part of its contract, so the check is here (a few lines).

A page on another site can send, without asking the server first (no CORS preflight), only a POST whose
Content-Type is a form's (urlencoded, multipart) or text/plain, with no header of its own choosing. So a
POST is accepted only with a JSON content type (which a browser preflights, and CORS is off unless
RAGSTORE_CORS_ORIGINS allows an origin) or with an `X-Requested-With` header (which a form cannot add):
multipart uploads and empty POSTs carry that header. PUT, PATCH and DELETE are never simple: a browser
always preflights them, so they need neither (`curl -X DELETE` keeps working, and a PUT where no route
takes one still answers 405).
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from ragstore.api.limits import send_error
from ragstore.config import Settings
from ragstore.errors import BadRequest, Forbidden, UnsupportedMediaType

__all__ = ["SiteGuardMiddleware", "allowed_hosts", "host_name"]

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


class SiteGuardMiddleware:
    def __init__(self, app: ASGIApp, hosts: frozenset[str] | None) -> None:
        self.app = app
        self.hosts = hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        host = content_type = b""
        marked = False
        for name, value in scope["headers"]:
            if name == b"host":
                host = value
            elif name == b"content-type":
                content_type = value
            elif name == WRITE_HEADER:
                marked = True
        if self.hosts is not None and host_name(host.decode("latin-1")) not in self.hosts:
            shown = host.decode("latin-1")[:100] or "(none)"
            await send_error(
                send,
                BadRequest(
                    f"this server does not answer to the host {shown!r}; set RAGSTORE_ALLOWED_HOSTS to the names "
                    "clients use to reach it"
                ),
            )
            return
        if scope["type"] == "http" and scope["method"] == "POST" and not marked:
            kind = content_type.split(b";", 1)[0].strip().lower()
            if kind != b"application/json" and not kind.endswith(b"+json"):
                await send_error(send, _refusal(kind.decode("latin-1")))
                return
        await self.app(scope, receive, send)


def _refusal(kind: str) -> Forbidden | UnsupportedMediaType:
    if kind == "multipart/form-data":
        return Forbidden(
            "a multipart upload must carry an X-Requested-With header (any value), which a page on another "
            "site cannot add to a form"
        )
    return UnsupportedMediaType(
        f"send Content-Type: application/json (or, for an upload or an empty body, an X-Requested-With header), "
        f"not {kind or 'no content type'}"
    )
