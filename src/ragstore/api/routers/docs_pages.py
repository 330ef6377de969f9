"""The OpenAPI pages, Swagger UI at /docs and ReDoc at /redoc, with every script, style sheet and icon they load
served by ragstore itself.

FastAPI's own pages load Swagger UI and ReDoc from a CDN (and ReDoc its fonts from Google, the favicon from
fastapi.tiangolo.com), so on a machine without internet access they stay blank. The assets come from the
`fastapi-offline` package (MIT; Swagger UI 5 and ReDoc 2 bundles and a favicon, each under its own licence),
a dependency of ragstore, so `pip install ragstore` brings them; they are served under ASSETS_URL.

Who may see them: everyone, as before. The pages hold nothing beyond what `GET /openapi.json` (public) already
says, and the assets are the packages' public files. The page routes declare `public()`, so they are in the
authorization matrix like every route; the assets mount is not an API route, and tests/test_authorization.py
holds its row (and /openapi.json's): answered without credentials, 401 for credentials that prove nothing.
Swagger UI's online validator badge is off: it would send the document's address to validator.swagger.io.

Each page also carries a Content-Security-Policy that lets it load from this server only: a bundle may still
name a host of its own (ReDoc 2's menu shows Redocly's logo from cdn.redoc.ly, with no option to turn it
off), and the browser then refuses that one request instead of sending it (the logo is simply not shown).
The pages' inline scripts are allowed by their hashes, not by 'unsafe-inline'.
"""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path

import fastapi_offline
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from ragstore.api.permissions import public

__all__ = ["ASSETS", "ASSETS_URL", "DOCS_URL", "OAUTH2_REDIRECT_URL", "REDOC_URL", "install_docs_pages"]

DOCS_URL = "/docs"
OAUTH2_REDIRECT_URL = "/docs/oauth2-redirect"
REDOC_URL = "/redoc"
ASSETS_URL = "/docs/assets"
ASSETS = Path(fastapi_offline.__file__).parent / "static"
SWAGGER_JS, SWAGGER_CSS, REDOC_JS, FAVICON = (
    "swagger-ui-bundle.js",
    "swagger-ui.css",
    "redoc.standalone.js",
    "favicon.png",
)
# No online validator badge: Swagger UI would otherwise load an image from validator.swagger.io.
SWAGGER_PARAMETERS = {"validatorUrl": None}

INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)
# ReDoc styles itself with inline <style> (styled-components) and runs its search in a blob: worker; both
# UIs draw icons from data: URLs. Nothing is allowed from another origin.
POLICY = (
    "default-src 'self'; script-src 'self'{scripts}; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "font-src 'self' data:; worker-src 'self' blob:; connect-src 'self'; frame-ancestors 'none'; "
    "base-uri 'none'; form-action 'self'"
)

router = APIRouter(include_in_schema=False, dependencies=[Depends(public())])


def _asset(request: Request, name: str) -> str:
    """The address of an asset as the browser must ask for it (behind a proxy's root path too)."""
    return f"{request.scope.get('root_path', '')}{ASSETS_URL}/{name}"


def _openapi_url(request: Request) -> str:
    return f"{request.scope.get('root_path', '')}{request.app.openapi_url}"


def _confined(page: HTMLResponse) -> HTMLResponse:
    """`page` with a policy that lets the browser load nothing from another origin (see the module's doc)."""
    hashes = [
        base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
        for script in INLINE_SCRIPT.findall(bytes(page.body).decode())
    ]
    page.headers["Content-Security-Policy"] = POLICY.format(scripts="".join(f" 'sha256-{h}'" for h in hashes))
    return page


@router.get(DOCS_URL)
async def swagger_ui(request: Request) -> HTMLResponse:
    return _confined(
        get_swagger_ui_html(
            openapi_url=_openapi_url(request),
            title=f"{request.app.title} - Swagger UI",
            oauth2_redirect_url=f"{request.scope.get('root_path', '')}{OAUTH2_REDIRECT_URL}",
            swagger_js_url=_asset(request, SWAGGER_JS),
            swagger_css_url=_asset(request, SWAGGER_CSS),
            swagger_favicon_url=_asset(request, FAVICON),
            swagger_ui_parameters=SWAGGER_PARAMETERS,
        )
    )


@router.get(OAUTH2_REDIRECT_URL)
async def swagger_ui_redirect() -> HTMLResponse:
    return _confined(get_swagger_ui_oauth2_redirect_html())


@router.get(REDOC_URL)
async def redoc(request: Request) -> HTMLResponse:
    return _confined(
        get_redoc_html(
            openapi_url=_openapi_url(request),
            title=f"{request.app.title} - ReDoc",
            redoc_js_url=_asset(request, REDOC_JS),
            redoc_favicon_url=_asset(request, FAVICON),
            with_google_fonts=False,
        )
    )


def install_docs_pages(app: FastAPI) -> None:
    """Serve /docs, /redoc and their assets from the package; the app must be made with docs_url=None and
    redoc_url=None, so FastAPI does not add its CDN-loading pages at the same paths first."""
    if app.docs_url is not None or app.redoc_url is not None:
        raise ValueError("create the app with docs_url=None and redoc_url=None: ragstore serves its own pages")
    app.include_router(router)
    app.mount(ASSETS_URL, StaticFiles(directory=ASSETS), name="docs-assets")
