"""/docs (Swagger UI) and /redoc (ReDoc) in a real browser with no network: Debian's Chromium through Playwright
against a real `ragstore serve` (the `live_server` fixture, RAGSTORE_AUTH=required as shipped).

Every request to a host other than the server is aborted and recorded, and Chromium resolves no host name but
the loopback one, so a page that still needed a CDN, a web font or a favicon from elsewhere would show up in
`left` (and, with its script missing, list no operation). Each page must list the API's operations.
The pages' Content-Security-Policy (api/routers/docs_pages.py) makes the browser refuse, unsent, what a
bundle names elsewhere (ReDoc's Redocly logo): such refusals are kept in `refused` and must name another
host only, so the policy never breaks the page itself (its inline script, styles, worker or icons).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

CHROMIUM = Path("/usr/bin/chromium")
REQUIRE = os.environ.get("RAGSTORE_REQUIRE_SERVICES") == "1"
SEARCH = "Dense, lexical or hybrid search"  # the summary of POST /v1/collections/{name}/search
CREATE = "Create a collection"  # the summary of POST /v1/collections
# No name resolves (as on a machine without network); the server is reached by its address, 127.0.0.1.
OFFLINE_ARGS = [
    "--no-sandbox",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    "--disable-background-networking",
]

pytestmark = pytest.mark.slow


@pytest.fixture
def chromium() -> Any:
    if not CHROMIUM.exists():
        if REQUIRE:
            pytest.fail("chromium is required in CI (apt-get install chromium)", pytrace=False)
        pytest.skip("no /usr/bin/chromium (Debian package chromium)")
    playwright = pytest.importorskip("playwright.sync_api")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=OFFLINE_ARGS)
        try:
            yield browser
        finally:
            browser.close()


class Offline:
    """A browser context whose requests may go to `origin` only: every other one is aborted and kept in `left`;
    requests to the server that failed (a missing asset) are kept in `failed`, script errors in `errors`, and
    what the page's Content-Security-Policy refused in `refused`."""

    def __init__(self, browser: Any, origin: str) -> None:
        self.origin = urlsplit(origin).netloc
        self.left: list[str] = []
        self.failed: list[str] = []
        self.errors: list[str] = []
        self.refused: list[str] = []
        self.context = browser.new_context(service_workers="block")
        self.context.route("**/*", self._route)
        self.page = self.context.new_page()
        self.page.on("requestfailed", self._failed)
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.page.on("console", self._console)

    def _route(self, route: Any) -> None:
        parts = urlsplit(route.request.url)
        if parts.scheme in ("data", "blob") or (parts.scheme in ("http", "https") and parts.netloc == self.origin):
            route.continue_()
            return
        self.left.append(route.request.url)
        route.abort("internetdisconnected")

    def _failed(self, request: Any) -> None:
        if urlsplit(request.url).netloc == self.origin:
            self.failed.append(f"{request.url}: {request.failure}")

    def _console(self, message: Any) -> None:
        if "Content Security Policy" in message.text:
            self.refused.append(message.text)

    def check_nothing_left(self) -> None:
        assert not self.left, f"requests that would have left the machine: {self.left}"
        assert not self.failed and not self.errors, (self.failed, self.errors)
        for refusal in self.refused:  # only another host's resource, never the page's own script or style
            named = re.findall(r"'(https?://[^']+)'", refusal)
            assert named and all(urlsplit(url).netloc != self.origin for url in named), refusal

    def served(self, url: str) -> list[str]:
        """Every response the page got from the server while loading `url`, as `status path`."""
        statuses: list[str] = []
        self.page.on("response", lambda answer: statuses.append(f"{answer.status} {urlsplit(answer.url).path}"))
        answer = self.page.goto(url, wait_until="load")
        assert answer is not None and answer.status == 200
        return statuses


def test_swagger_ui_lists_the_operations_offline(chromium: Any, live_server: Any) -> None:
    offline = Offline(chromium, live_server.url)
    statuses = offline.served(f"{live_server.url}/docs")
    page = offline.page
    page.wait_for_selector(f".opblock-summary-description:has-text('{SEARCH}')", timeout=30_000)
    summaries = page.locator(".opblock-summary-description").all_inner_texts()
    assert CREATE in summaries and len(summaries) >= 30  # every documented operation, not a fragment
    paths = page.locator(".opblock-summary-path").all_inner_texts()
    assert any(p.replace("\u200b", "") == "/v1/collections/{name}/search" for p in paths)
    # The style sheet came from the server and applies (an unstyled page would still hold the text).
    styled = page.evaluate(
        "[...document.styleSheets].some(s => (s.href || '').endsWith('/docs/assets/swagger-ui.css')"
        " && s.cssRules.length > 100)"
    )
    assert styled
    assert "200 /docs/assets/swagger-ui-bundle.js" in statuses and "200 /openapi.json" in statuses
    offline.check_nothing_left()


def test_redoc_lists_the_operations_offline(chromium: Any, live_server: Any) -> None:
    offline = Offline(chromium, live_server.url)
    statuses = offline.served(f"{live_server.url}/redoc")
    page = offline.page
    # ReDoc renders each operation as a menu entry and a section headed by its summary.
    page.wait_for_selector(f"h2:has-text('{SEARCH}')", timeout=60_000)
    headings = page.locator("h2").all_inner_texts()
    assert CREATE in headings and len(headings) >= 30
    assert page.locator(f"[role=menuitem]:has-text('{SEARCH}')").count() >= 1
    assert "200 /docs/assets/redoc.standalone.js" in statuses and "200 /openapi.json" in statuses
    offline.check_nothing_left()
