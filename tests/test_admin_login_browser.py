"""The admin page's login in a real browser (Debian's Chromium through Playwright): the redirect to the
form, a wrong password, the cookie's flags, the page's CSRF token on its buttons, a forged POST refused,
logout, and a user who is not an admin."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ragstore.api.app import create_app
from ragstore.api.user_auth import SESSION_COOKIE
from ragstore.config import Settings
from ragstore.security.login import BAD_CREDENTIALS
from ragstore.service import RagStore
from servers import app_in_thread

CHROMIUM = Path("/usr/bin/chromium")
REQUIRE = os.environ.get("RAGSTORE_REQUIRE_SERVICES") == "1"
PASSWORD = "correct horse battery staple"
FORGED_POST = (
    "fetch('/admin/logout', {method: 'POST', headers: {'content-type': 'application/json'}, body: '{}'})"
    ".then(r => r.status)"
)


@pytest.fixture
def base_url(make_settings: Callable[..., Settings], embedder: Any) -> Iterator[str]:
    if not CHROMIUM.exists():
        if REQUIRE:
            pytest.fail("chromium is required in CI (apt-get install chromium)", pytrace=False)
        pytest.skip("no /usr/bin/chromium (Debian package chromium)")
    with RagStore.open(make_settings(auth="required"), embedder=embedder) as store:
        store.users.create("admin@example.org", PASSWORD, role="admin")
        store.users.create("reader@example.org", PASSWORD, role="read")
        with app_in_thread(create_app(store=store)) as base:
            yield base


@pytest.mark.parametrize("database_url", [None], ids=["sqlite"])
def test_logging_in_to_the_admin_page_in_chromium(base_url: str) -> None:
    playwright = pytest.importorskip("playwright.sync_api")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            context = browser.new_context()
            page = context.new_page()
            page.goto(f"{base_url}/admin")
            assert page.url == f"{base_url}/admin/login"  # nobody logged in: the form

            page.fill("#email", "admin@example.org")
            page.fill("#password", "not the password")
            page.click("#submit")
            page.wait_for_selector("#message:text-matches('..')")  # selectors, not a script: the policy forbids eval
            assert page.inner_text("#message") == BAD_CREDENTIALS

            page.fill("#password", PASSWORD)
            page.click("#submit")
            page.wait_for_url(f"{base_url}/admin")
            assert page.inner_text("#who").startswith("user:admin@example.org")
            cookie = next(c for c in context.cookies() if c["name"] == SESSION_COOKIE)
            assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/admin"
            assert not cookie["secure"]  # plain HTTP; Secure over TLS (test_auth_api)
            assert SESSION_COOKIE not in page.evaluate("document.cookie")  # no script can read it

            page.click("#check-consistency")  # the page's own POST carries its CSRF token
            page.wait_for_selector("#message:text-matches('^done')")
            assert page.evaluate(FORGED_POST) == 403  # a POST without the token is refused

            page.click("#logout")
            page.wait_for_url(f"{base_url}/admin/login")
            page.goto(f"{base_url}/admin")
            assert page.url == f"{base_url}/admin/login"

            page.fill("#email", "reader@example.org")
            page.fill("#password", PASSWORD)
            page.click("#submit")
            page.wait_for_url(f"{base_url}/admin")
            answer = page.goto(f"{base_url}/admin")
            assert answer is not None and answer.status == 403
        finally:
            browser.close()
