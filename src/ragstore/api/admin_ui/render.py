"""How an admin page is made: one Jinja2 environment over the package's templates, the filters that give
every page one way to show a time, a size and a duration, and the response headers every page carries.

The pages are rendered on the server from the same facade calls as the JSON routes, so reading one needs no
script; the only script is `static/admin.js`, which sends the buttons' POSTs with the session's CSRF token.
Everything a page loads comes from this server (ASSETS_URL), and the Content-Security-Policy says so: no
inline script or style is allowed at all, so markup that slipped past escaping still could not run.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup, escape

from ragstore import __version__
from ragstore.api.deps import get_store
from ragstore.api.permissions import principal_of
from ragstore.api.user_auth import SESSION_COOKIE
from ragstore.errors import Forbidden
from ragstore.security.principal import Principal, Role
from ragstore.service import RagStore

__all__ = [
    "ASSETS_URL",
    "LOGIN_PAGE",
    "NAVIGATION",
    "POLICY",
    "STATIC",
    "LoginRequired",
    "Viewer",
    "page_viewer",
    "render",
]

HERE = Path(__file__).parent
STATIC = HERE / "static"
ASSETS_URL = "/admin/assets"
LOGIN_PAGE = "/admin/login"
POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
# (path, title) of each page, in the order of the navigation bar.
NAVIGATION = (
    ("/admin", "Dashboard"),
    ("/admin/view/backups", "Backups"),
    ("/admin/view/consistency", "Consistency"),
    ("/admin/view/keys", "Keys and usage"),
    ("/admin/view/audit", "Audit log"),
    ("/admin/view/jobs", "Jobs and outbox"),
    ("/admin/view/maintenance", "Maintenance"),
    ("/admin/view/conversations", "Conversations"),
)


@dataclass(frozen=True)
class Viewer:
    """The logged-in admin looking at a page, and the CSRF token its buttons send."""

    principal: Principal
    csrf: str
    has_session: bool


class LoginRequired(Exception):
    """Nobody is logged in: the page answers 303 to the login form (the handler install_admin_ui adds)."""


def page_viewer(request: Request, store: RagStore = Depends(get_store)) -> Viewer:
    """Who looks at an admin page: LoginRequired when nobody is logged in, 403 for a non-admin."""
    principal = principal_of(request)
    if principal is None:
        raise LoginRequired
    if not principal.allows(Role.ADMIN):
        raise Forbidden(f"{principal.actor} does not hold the admin role; log in as an admin at {LOGIN_PAGE}")
    cookie = request.cookies.get(SESSION_COOKIE)
    return Viewer(principal, store.users.csrf_token(cookie) if cookie else "", cookie is not None)


def when(value: datetime | str | None) -> Markup:
    """Every time on every page in one form, UTC to the second, with the exact value for a machine."""
    if value is None or value == "":
        return Markup('<span class="muted">never</span>')
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    shown = moment.strftime("%Y-%m-%d %H:%M:%S UTC")
    return Markup('<time datetime="{}">{}</time>').format(moment.isoformat(), shown)


def size(n: int | float | None) -> str:
    """Bytes in the unit a person reads them in (binary units, as `du -h`)."""
    if n is None:
        return "–"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:,.0f} {unit}" if unit == "B" else f"{value:,.1f} {unit}"
        value /= 1024
    return f"{value:,.1f} TiB"  # pragma: no cover (the loop returns)


def seconds(ms: float | None) -> str:
    if ms is None:
        return "–"
    return f"{ms:,.0f} ms" if ms < 1000 else f"{ms / 1000:,.1f} s"


def number(n: int | float | None) -> str:
    return "–" if n is None else f"{n:,}"


def highlighted(text: str) -> Markup:
    """A message search's passage (which the search escaped already, chat/search.py), escaped here again from
    its plain text so that the page never trusts it: only <mark></mark> pairs are kept as markup."""
    safe = str(escape(html.unescape(text)))
    return Markup(safe.replace("&lt;mark&gt;", "<mark>").replace("&lt;/mark&gt;", "</mark>"))


ENVIRONMENT = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(["html"]),
    undefined=StrictUndefined,  # a misspelt name fails the page (and its test), never renders as nothing
    trim_blocks=True,
    lstrip_blocks=True,
)
ENVIRONMENT.filters.update(when=when, size=size, seconds=seconds, number=number, highlighted=highlighted)
ENVIRONMENT.globals.update(navigation=NAVIGATION, assets=ASSETS_URL, version=__version__)


def render(
    template: str, request: Request, viewer: Viewer | None, *, status_code: int = 200, **context: Any
) -> HTMLResponse:
    page = ENVIRONMENT.get_template(template).render(request_path=request.url.path, viewer=viewer, **context)
    return HTMLResponse(
        page,
        status_code=status_code,
        headers={"Cache-Control": "no-store", "Content-Security-Policy": POLICY, "X-Content-Type-Options": "nosniff"},
    )
