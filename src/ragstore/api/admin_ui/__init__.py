"""The admin pages: server-rendered HTML (Jinja2 templates), one style sheet and one script, all shipped
in the package and served by ragstore itself under /admin/assets, so the pages work with no internet access
and under a Content-Security-Policy that allows nothing from elsewhere (render.py)."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

from ragstore.api.admin_ui import actions, pages
from ragstore.api.admin_ui.render import ASSETS_URL, LOGIN_PAGE, STATIC, LoginRequired

__all__ = ["install_admin_ui"]


def install_admin_ui(app: FastAPI) -> None:
    app.add_exception_handler(LoginRequired, _to_login)
    app.include_router(pages.router)
    app.include_router(actions.router)
    app.mount(ASSETS_URL, StaticFiles(directory=STATIC), name="admin-assets")


async def _to_login(request: Request, exc: Exception) -> RedirectResponse:
    return RedirectResponse(LOGIN_PAGE, status_code=303)
