"""The admin web page: backups, disaster-recovery readiness and the last consistency check, at a glance.

Rendered on the server from the same facade calls as the JSON endpoints (no JavaScript needed to read it);
its buttons POST to the JSON API to start a backup or run a consistency check (GETs there only read).
It needs a logged-in admin (admin_login.py): nobody logged in is sent to `/admin/login`, a user without the
admin role gets 403. Every POST of the page carries the session's CSRF token in `X-CSRF-Token`.
"""

from __future__ import annotations

from datetime import datetime
from html import escape
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from ragstore.api.deps import get_store
from ragstore.api.errors import DOWN, error_responses_of_a_page
from ragstore.api.permissions import RouteAccess, principal_of
from ragstore.api.user_auth import SESSION_COOKIE
from ragstore.errors import Forbidden, RagstoreError
from ragstore.security.principal import Role
from ragstore.service import RagStore

router = APIRouter(tags=["admin"])

STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:2rem;color:#1d2330}
h1{font-size:1.4rem}h2{font-size:1.1rem;margin-top:2rem}
table{border-collapse:collapse;margin:.5rem 0}td,th{border:1px solid #d5d9e0;padding:.25rem .6rem;text-align:left}
th{background:#f2f4f7}.ready{color:#13795b}.warning{color:#a15c00}.failing,.failed{color:#b42318}
button{margin-right:.5rem;padding:.35rem .8rem}#message{margin-left:1rem}
"""

SCRIPT = """
const csrf=document.querySelector('meta[name=csrf-token]').content;
async function post(url, body){
  const m=document.getElementById('message'); m.textContent='…';
  const r=await fetch(url,{method:'POST',headers:{'content-type':'application/json','x-csrf-token':csrf},
    body:JSON.stringify(body)});
  const data=await r.json();
  m.textContent=r.ok?(r.status===202?'started: ':'done: ')+url:'error: '+(data.error?data.error.message:r.status);
  m.className=r.ok?'ready':'failing'; if(r.ok){setTimeout(()=>location.reload(),1500);}
}
async function logout(){
  await fetch('/admin/logout',{method:'POST',
    headers:{'content-type':'application/json','x-csrf-token':csrf},body:'{}'});
  location.href='/admin/login';
}
"""
NOT_ADMIN = (403, "The logged-in user (or key) does not hold the admin role.")
LOGIN_PAGE = "/admin/login"


def _table(headers: list[str], rows: list[list[Any]], table_id: str) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _when(value: datetime | None) -> str:
    """The time as the JSON sends it (ISO 8601), so the page and the API read the same."""
    return "" if value is None else value.isoformat()


def _mib(n: int | None) -> str:
    return "" if n is None else f"{n / 1024 / 1024:,.1f} MiB"


async def _page_access(request: Request) -> None:
    """Declares the page an admin route for the route table; `admin_page` itself decides (it redirects)."""


_page_access.access = RouteAccess(Role.ADMIN, None, page=True)  # type: ignore[attr-defined]


@router.get(
    "/admin",
    response_class=HTMLResponse,
    summary="The admin page (HTML); nobody logged in is redirected (303) to /admin/login",
    responses={
        303: {"description": "Nobody is logged in: see /admin/login."},
        **error_responses_of_a_page(NOT_ADMIN, DOWN),
    },
    dependencies=[Depends(_page_access)],
)
def admin_page(request: Request, store: RagStore = Depends(get_store)) -> Response:
    principal = principal_of(request)
    if principal is None:
        return RedirectResponse(LOGIN_PAGE, status_code=303)
    if not principal.allows(Role.ADMIN):
        raise Forbidden(f"{principal.actor} does not hold the admin role; log in as an admin at {LOGIN_PAGE}")
    cookie = request.cookies.get(SESSION_COOKIE)
    csrf = store.users.csrf_token(cookie) if cookie else ""
    parts = [
        "<!doctype html><html lang=en><head><meta charset=utf-8><title>ragstore admin</title>"
        f'<meta name=csrf-token content="{escape(csrf)}"><style>{STYLE}'
    ]
    parts.append(f"</style><script>{SCRIPT}</script></head><body><h1>ragstore admin</h1>")
    parts.append(f"<p id=who>{escape(principal.actor)}")
    if cookie:
        parts.append(' <button id=logout onclick="logout()">Log out</button>')
    parts.append("</p>")
    parts.append(
        "<div><button id=backup-full onclick=\"post('/admin/backup/trigger',{kind:'full'})\">Full backup now</button>"
        "<button id=backup-incremental onclick=\"post('/admin/backup/trigger',{kind:'incremental'})\">"
        "Incremental backup now</button>"
        "<button id=check-consistency onclick=\"post('/admin/consistency',{})\">Check consistency now</button>"
        "<span id=message></span></div>"
    )
    try:
        dr = store.backups.dr_report()
        parts.append(
            f"<h2>Disaster recovery: <span id=dr-status class={escape(dr.status)}>{escape(dr.status)}</span></h2>"
        )
        parts.append("<ul>" + "".join(f"<li class=failing>{escape(p)}</li>" for p in dr.problems))
        parts.append("".join(f"<li class=warning>{escape(w)}</li>" for w in dr.warnings) + "</ul>")
        backups = store.backups.list()
        rows = [
            [
                b.id,
                b.kind,
                b.created_at,
                b.documents,
                b.chunks,
                _mib(b.logical_bytes),
                _mib(b.stored_bytes),
                b.verified_at or ("FAILED" if b.verify else "no"),
                b.note or "",
            ]
            for b in reversed(backups)
        ]
        parts.append(f"<h2>Backups ({len(backups)}) in {escape(dr.repository)}</h2>")
        parts.append(
            _table(["id", "kind", "created", "docs", "chunks", "size", "stored", "verified", "note"], rows, "backups")
        )
    except RagstoreError as exc:
        parts.append(f"<p class=failing id=backup-error>{escape(exc.message)}</p>")
    runs = store.backups.history(20)
    parts.append("<h2>Recent backup runs</h2>")
    parts.append(
        _table(
            ["run", "action", "kind", "backup", "state", "started", "seconds", "size", "error"],
            [
                [
                    r.id,
                    r.action,
                    r.kind or "",
                    r.backup_id or "",
                    r.state,
                    _when(r.started_at),
                    "" if r.duration_ms is None else f"{r.duration_ms / 1000:.1f}",
                    _mib(r.size_bytes),
                    r.error or "",
                ]
                for r in runs
            ],
            "runs",
        )
    )
    parts.append("<h2>Consistency</h2>")
    history = store.consistency.history(5)
    parts.append(
        _table(
            ["report", "started", "trigger", "state", "problems"],
            [[r.id, _when(r.started_at), r.trigger, r.state, r.problems] for r in history],
            "consistency",
        )
    )
    parts.append("</body></html>")
    return HTMLResponse("".join(parts), headers={"Cache-Control": "no-store"})
