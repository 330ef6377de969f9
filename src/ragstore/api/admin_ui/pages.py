"""The admin pages (HTML): the dashboard at /admin and one page per part under /admin/view/.

Each is read from the same facade calls as the JSON routes and says what to do next where something needs
a person (a fresh store with no backup yet is "not protected yet" with the button that fixes it, not a red
"failing"). Nobody logged in is sent to the login form (303); a caller without the admin role gets 403.
A part that cannot be read (a backup repository that is not mounted) is shown as such on its page; the
rest of the page still renders.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Literal, TypeVar

from apscheduler.triggers.cron import CronTrigger
from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import HTMLResponse

from ragstore.api.admin_ui.chart import dashboard_charts
from ragstore.api.admin_ui.render import Viewer, page_viewer, render
from ragstore.api.deps import get_store
from ragstore.api.errors import DOWN, INVALID, error_responses_of_a_page
from ragstore.api.permissions import RouteAccess
from ragstore.chat.search import MAX_MESSAGE_QUERY_CHARS
from ragstore.db.state import AUDIT_VERIFIED_KEY, read_state
from ragstore.errors import NotFound, RagstoreError
from ragstore.ops.metrics import http_totals
from ragstore.runtime.maintenance import maintenance_history
from ragstore.security.principal import Role
from ragstore.service import RagStore
from ragstore.valid_text import INT64_MAX

__all__ = ["router"]

router = APIRouter(tags=["admin"])
T = TypeVar("T")

NOT_ADMIN = (403, "The logged-in user (or key) does not hold the admin role.")
REDIRECT: dict[int | str, dict[str, Any]] = {303: {"description": "Nobody is logged in: see /admin/login."}}
JOB_STATES = ("queued", "leased", "done", "dead")


async def _page_access(request: Request) -> None:
    """Declares the pages admin routes for the route table; `viewer_of` itself decides (it redirects)."""


_page_access.access = RouteAccess(Role.ADMIN, None, page=True)  # type: ignore[attr-defined]


def _page(path: str, summary: str, *extra: tuple[int, str]) -> Callable[[Callable[..., Response]], Any]:
    return router.get(
        path,
        response_class=HTMLResponse,
        summary=summary,
        responses={**REDIRECT, **error_responses_of_a_page(NOT_ADMIN, *extra, DOWN)},
        dependencies=[Depends(_page_access)],
    )


def _attempt(read: Callable[[], T]) -> tuple[T | None, str | None]:
    """A part of a page read on its own: its error is shown in its place, the rest still renders."""
    try:
        return read(), None
    except RagstoreError as exc:
        return None, exc.message


def _next_runs(schedules: dict[str, str], now: datetime, count: int = 3) -> list[dict[str, Any]]:
    """Each schedule (a crontab line, empty for off) with its next `count` times, as the scheduler sees them."""
    rows: list[dict[str, Any]] = []
    for name, line in schedules.items():
        times: list[datetime] = []
        if line:
            trigger = CronTrigger.from_crontab(line, timezone="UTC")
            previous: datetime | None = None
            moment = now
            for _ in range(count):
                upcoming = trigger.get_next_fire_time(previous, moment)
                if upcoming is None:
                    break
                times.append(upcoming)
                previous, moment = upcoming, upcoming + timedelta(seconds=1)
        rows.append({"name": name, "line": line, "next": times})
    return rows


@_page("/admin", "The admin dashboard (HTML); nobody logged in is redirected (303) to /admin/login")
def dashboard(
    request: Request, viewer: Viewer = Depends(page_viewer), store: RagStore = Depends(get_store)
) -> Response:
    health = store.ops.health()
    components = health.to_json()["components"]
    history = store.ops.history(24)
    dr, dr_error = _attempt(lambda: store.backups.dr_report(public=True))
    latest_check = next(iter(store.consistency.history(1)), None)
    return render(
        "dashboard.html",
        request,
        viewer,
        health=health,
        components=components,
        charts=dashboard_charts(history.snapshots),
        snapshots=len(history.snapshots),
        http=http_totals(),
        dr=dr,
        dr_error=dr_error,
        latest_check=latest_check,
        audit=read_state(store.db, AUDIT_VERIFIED_KEY),
        jobs=store.jobs.counts(),
        outbox=store.queues.outbox(),
        snapshot_schedule=store.settings.health_snapshot_schedule,
    )


@_page("/admin/view/backups", "Backups: readiness, the list with verify and restore-beside, runs, schedule")
def backups(request: Request, viewer: Viewer = Depends(page_viewer), store: RagStore = Depends(get_store)) -> Response:
    settings = store.settings
    dr, dr_error = _attempt(lambda: store.backups.dr_report(public=True))
    listing, list_error = _attempt(store.backups.list)
    found = list(reversed(listing or []))
    schedules = {
        "full backup": settings.backup_schedule_full,
        "incremental backup": settings.backup_schedule_incremental,
    }
    return render(
        "backups.html",
        request,
        viewer,
        dr=dr,
        dr_error=dr_error,
        backups=found,
        list_error=list_error,
        stored_bytes=sum(b.stored_bytes for b in found),
        logical_bytes=sum(b.logical_bytes for b in found),
        runs=store.backups.history(30),
        schedules=_next_runs(schedules, store.clock.now()),
        verify_scheduled=settings.backup_verify_scheduled,
        restore_stamp=store.clock.now().strftime("%Y%m%d-%H%M%S"),
    )


@_page("/admin/view/consistency", "Consistency: past checks, one report's findings and repairs", INVALID)
def consistency(
    request: Request,
    viewer: Viewer = Depends(page_viewer),
    report: int | None = Query(None, ge=1, le=INT64_MAX, description="The report to show (default: the newest)."),
    store: RagStore = Depends(get_store),
) -> Response:
    try:
        shown = store.consistency.report(report)
    except NotFound:
        shown = None
    return render(
        "consistency.html",
        request,
        viewer,
        history=store.consistency.history(30),
        report=shown,
        asked=report,
        schedules=_next_runs({"consistency check": store.settings.check_schedule}, store.clock.now()),
    )


@_page("/admin/view/keys", "API keys and their usage over the last days", INVALID)
def keys(
    request: Request,
    viewer: Viewer = Depends(page_viewer),
    days: int = Query(7, ge=1, le=90, description="The usage window, in days."),
    store: RagStore = Depends(get_store),
) -> Response:
    return render(
        "keys.html",
        request,
        viewer,
        keys=list(reversed(store.keys.list())),
        usage=store.usage.summary(days=days, limit=50),
        days=days,
    )


@_page("/admin/view/audit", "The audit log with its verification status", INVALID)
def audit(
    request: Request,
    viewer: Viewer = Depends(page_viewer),
    action: str | None = Query(None, max_length=64, description="Only this action, or `kind.*`."),
    actor: str | None = Query(None, max_length=200, description="Only this actor."),
    store: RagStore = Depends(get_store),
) -> Response:
    entries, error = _attempt(lambda: store.audit.list(action=action or None, actor=actor or None, limit=200))
    return render(
        "audit.html",
        request,
        viewer,
        entries=entries or [],
        error=error,
        action=action or "",
        actor=actor or "",
        verified=read_state(store.db, AUDIT_VERIFIED_KEY),
    )


@_page("/admin/view/jobs", "Jobs and the outbox: pending, failed and dead work, with retry", INVALID)
def jobs(
    request: Request,
    viewer: Viewer = Depends(page_viewer),
    state: Literal["queued", "leased", "done", "dead"] | None = Query(None, description="Only jobs in this state."),
    store: RagStore = Depends(get_store),
) -> Response:
    return render(
        "jobs.html",
        request,
        viewer,
        counts=store.jobs.counts(),
        jobs=store.jobs.list(state=state, limit=100),
        state=state or "",
        states=JOB_STATES,
        outbox=store.queues.outbox(),
    )


@_page("/admin/view/maintenance", "Maintenance runs (optimize, cleanup), their schedule, and run buttons")
def maintenance(
    request: Request, viewer: Viewer = Depends(page_viewer), store: RagStore = Depends(get_store)
) -> Response:
    settings = store.settings
    schedules = {"cleanup": settings.cleanup_schedule, "optimize": settings.optimize_schedule}
    return render(
        "maintenance.html",
        request,
        viewer,
        runs=maintenance_history(store.db, 50),
        schedules=_next_runs(schedules, store.clock.now()),
    )


@_page("/admin/view/conversations", "Conversations, read-only: the newest, and a search over messages", INVALID)
def conversations(
    request: Request,
    viewer: Viewer = Depends(page_viewer),
    q: str | None = Query(None, max_length=MAX_MESSAGE_QUERY_CHARS, description="Words to find in messages."),
    store: RagStore = Depends(get_store),
) -> Response:
    query = (q or "").strip()
    found, error = _attempt(lambda: store.chat.search(query, k=50)) if query else (None, None)
    return render(
        "conversations.html",
        request,
        viewer,
        q=query,
        found=found,
        error=error,
        recent=store.chat.list(limit=30).conversations,
    )
